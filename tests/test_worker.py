"""The one worker (parabench.executors.worker) and its driver (executors/channel.py):
its replies in process and as a process started from a checkout, an arm of an older
commit speaking protocol 1, the commits it cannot measure, N arms in turns, and a
crashed or hung arm becoming a row while the others go on."""
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

import parabench
from parabench.config import Point, preset
from parabench.errors import UsageError
from parabench.executors import worker
from parabench.executors.channel import WorkerProcess
from parabench.regress import checkouts, interleave

ROOT = Path(parabench.__file__).resolve().parents[1]
SWEEP = preset("quick")


def _build(family="vit", depth=1, mode="eager"):
    point = Point(family, depth, 1, "float32", mode, "infer")
    return json.dumps({"cmd": "build", "point": asdict(point), "sweep": SWEEP.to_dict()})


def _serve(*lines):
    replies = []
    worker.serve([line + "\n" for line in lines], lambda **m: replies.append(m))
    return replies


def test_build_time_and_rebuild():
    built, timed, rebuilt, timed2 = _serve(
        _build(), json.dumps({"cmd": "time", "n": 4}),
        _build("paraformer-fused", 2), json.dumps({"cmd": "time", "n": 2}))
    assert built["per_call_ms"] > 0 and rebuilt["per_call_ms"] > 0
    assert len(timed["samples"]) == 4 and all(s > 0 for s in timed["samples"])
    assert len(timed2["samples"]) == 2


def test_unsupported_mode_is_skipped_and_failures_are_one_line():
    skipped, early, bad, after = _serve(
        _build(mode="graph"),  # CUDA graphs on the CPU
        json.dumps({"cmd": "time", "n": 2}),
        json.dumps({"cmd": "build", "point": {"family": "vit"}, "sweep": SWEEP.to_dict()}),
        json.dumps({"cmd": "time", "n": 2}))
    assert "CUDA" in skipped["skipped"]
    assert early == {"error": "RuntimeError: no point built"}
    assert bad["error"].startswith("TypeError: ") and "\n" not in bad["error"]
    assert bad["oom"] is False
    assert after["error"] == "RuntimeError: no point built"  # the failed build left nothing


def test_quit_ends_the_conversation():
    assert _serve(json.dumps({"cmd": "quit"}), _build()) == []


def test_worker_process_from_a_checkout():
    """As an interleaved arm starts it: the checkout as working directory and path."""
    w = WorkerProcess("this checkout", tree=ROOT)
    try:
        hello = w.hello()
        assert hello["ready"] and hello["protocol"] == worker.PROTOCOL
        assert "torch" in hello["env"] and hello["pid"] == w.pid
        built = w.ask(**json.loads(_build()))
        timed = w.ask(cmd="time", n=3)
    finally:
        w.stop()
    assert built["per_call_ms"] > 0 and len(timed["samples"]) == 3
    assert not w.alive()


def test_a_worker_importing_another_tree_is_refused(tmp_path):
    """A worker told to measure one tree that imports parabench from another (a broken
    export) would measure the wrong commit: it refuses in one line before any point."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'models'}",
           worker.TREE_ENV: str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "parabench.executors.worker"], cwd=tmp_path,
                         env=env, input="", capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "not from" in json.loads(out.stdout)["error"]


def _other_paraformer(tmp_path) -> Path:
    """A directory holding another `paraformer` (as another clone's editable install
    would provide it)."""
    (tmp_path / "other" / "paraformer").mkdir(parents=True)
    (tmp_path / "other" / "paraformer" / "__init__.py").write_text("OTHER = True\n")
    return tmp_path / "other"


def test_parabench_measures_the_paraformer_of_its_own_tree(tmp_path):
    """Found first on the path, another tree's paraformer would be measured under this
    tree's commit: importing parabench (as the CLI and every worker do before anything
    else) puts its own models/ ahead of it."""
    env = {**os.environ, "PYTHONPATH": str(_other_paraformer(tmp_path))}
    out = subprocess.run([sys.executable, "-c", "import parabench, paraformer; print(paraformer.__file__)"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve() == ROOT / "models" / "paraformer" / "__init__.py"


def test_a_commit_without_the_worker_is_refused(tmp_path):
    with pytest.raises(UsageError, match="predates the interleave worker"):
        checkouts.find_worker(checkouts.Tree("v0.1", tmp_path, "0123456789abcdef", False))
    here = checkouts.Tree("WORKTREE", ROOT, "", False)
    checkouts.find_worker(here)  # this checkout has the newest worker
    assert (here.module, here.protocol) == ("parabench.executors.worker", worker.PROTOCOL)


def test_several_process_pairs_fill_one_record_per_side(tmp_path):
    """`--processes 2`: two pairs of fresh workers, one after the other; each side's
    record holds both pairs' turns (same turn size), says how many rounds a pair ran,
    and compare builds its interval over the pairs."""
    from parabench.config import Sweep
    from parabench.regress.compare import run_compare
    from parabench.store import Store

    sweep = Sweep(families=("vit",), depths=(1,), threads=1)
    db = tmp_path / "ab.db"
    with Store(db) as store:
        a, b = interleave.interleaved_runs(["WORKTREE", "WORKTREE"], sweep, store=store,
                                           repo=ROOT, rounds=4, processes=2, turn_ms=5,
                                           log=lambda m: None)
        recs = store.records_frame([a, b])
        run = store.run(a)
    assert json.loads(run["sweep_json"])["interleaved"]["processes"] == 2
    for rec in recs.itertuples():
        turn = rec.extra["turn_size"]
        assert rec.extra["rounds_per_process"] == 4
        assert len(rec.samples_ms) == 2 * 4 * turn  # 2 pairs x 4 rounds x one turn each
    result = run_compare(a, b, db=db, save=False)
    row = result["rows"][0]
    assert row["ci_low"] <= row["ratio"] <= row["ci_high"] and row["p_value"] is not None


def _protocol_1_commit() -> str | None:
    """A commit of this repository whose only worker is parabench/regress/worker.py."""
    try:
        revs = subprocess.run(["git", "rev-list", "-n", "200", "HEAD", "--",
                               "parabench/regress/worker.py"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    for rev in revs:
        has = [subprocess.run(["git", "cat-file", "-e", f"{rev}:{f}"], cwd=ROOT,
                              capture_output=True).returncode == 0
               for f in ("parabench/regress/worker.py", "parabench/executors/worker.py")]
        if has == [True, False]:
            return rev
    return None


def test_an_older_commit_is_an_arm_through_protocol_1(tmp_path):
    """Commits from before the one worker still compare in turns against this one:
    their worker speaks protocol 1, whose build/time messages are unchanged."""
    from parabench.config import Sweep
    from parabench.store import Store

    old = _protocol_1_commit()
    if old is None:
        pytest.skip("no commit with only the protocol-1 worker in this clone's history")
    sweep = Sweep(families=("vit",), depths=(1,), threads=1)
    with Store(tmp_path / "ab.db") as store:
        a, b = interleave.interleaved_runs([old, "WORKTREE"], sweep, store=store, repo=ROOT,
                                           rounds=2, processes=1, turn_ms=5,
                                           log=lambda m: None)
        recs = {r.run_id: r for r in store.records_frame([a, b]).itertuples()}
        commit = store.run(a)["git_commit"]
    assert commit == old
    assert all(r.status == "ok" and r.samples_ms for r in recs.values())


def _arms_run(tmp_path, families, *, fault=None, point_timeout=None, depths=(1,)):
    from parabench.config import Sweep
    from parabench.executors.common import FAULT_ENV
    from parabench.regress.interleave import Arm
    from parabench.store import Store

    sweep = Sweep(families=("vit",), depths=depths, threads=1)
    env = {FAULT_ENV: fault} if fault else {}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with Store(tmp_path / "arms.db") as store:
            ids = interleave.interleaved_runs([Arm(family=f) for f in families], sweep,
                                              store=store, rounds=3, processes=1, turn_ms=5,
                                              point_timeout=point_timeout, log=lambda m: None)
            return ids, store.records_frame(sorted(set(ids))), store.run(ids[0])
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_family_arms_share_one_run_and_a_crashing_arm_is_a_row(tmp_path):
    """Executions of one model as arms (the fused goals): one run, one record per family
    and cell, every arm with the same turn size and rounds x turn samples. An arm whose
    worker dies (a segfault in a kernel) becomes an error row naming the signal, its
    worker is replaced for the next cell (which crashes again), and the other arms are
    measured all the same."""
    fams = ("paraformer-loop", "paraformer-fused", "vit")
    ids, recs, run = _arms_run(tmp_path, fams, fault="segv:paraformer-fused", depths=(1, 2))
    assert len(set(ids)) == 1
    assert json.loads(run["sweep_json"])["families"] == list(fams)
    by = {(r.family, r.depth): r for r in recs.itertuples()}
    assert len(by) == 6
    ok = [r for r in recs.itertuples() if r.family != "paraformer-fused"]
    assert all(r.status == "ok" and r.extra["family_arms"] for r in ok)
    for d in (1, 2):
        n = by[("vit", d)].extra["turn_size"]
        assert by[("paraformer-loop", d)].extra["turn_size"] == n
        assert len(by[("vit", d)].samples_ms) == len(by[("paraformer-loop", d)].samples_ms) == 3 * n
        bad = by[("paraformer-fused", d)]
        assert bad.status == "error" and "SIGSEGV" in bad.reason and not bad.samples_ms


@pytest.mark.slow
def test_a_hanging_arm_times_out(tmp_path):
    """--point-timeout reaches interleaved arms too: a hung build is killed and is a row."""
    _, recs, _ = _arms_run(tmp_path, ("paraformer-fused", "vit"), fault="sleep:paraformer-fused",
                           point_timeout=8)
    by = {r.family: r for r in recs.itertuples()}
    assert by["paraformer-fused"].status == "error"
    assert "timed out" in by["paraformer-fused"].reason
    assert by["vit"].status == "ok"
