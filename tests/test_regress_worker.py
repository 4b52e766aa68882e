"""The interleave worker (parabench.regress.worker): its replies, in process and as the
process `compare --interleave` starts, and the commits it cannot measure."""
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
from parabench.regress import interleave, worker

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


def test_worker_process_from_a_checkout(tmp_path):
    """As interleave starts it: `python -m parabench.regress.worker`, cwd = the checkout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "models")])}
    msgs = [_build(), json.dumps({"cmd": "time", "n": 3}), json.dumps({"cmd": "quit"})]
    out = subprocess.run([sys.executable, "-m", "parabench.regress.worker"], cwd=ROOT,
                         env=env, input="\n".join(msgs) + "\n", capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    hello, built, timed = (json.loads(line) for line in out.stdout.splitlines())
    assert hello["ready"] and hello["protocol"] == interleave._PROTOCOL == worker.PROTOCOL
    assert "torch" in hello["env"]
    assert built["per_call_ms"] > 0 and len(timed["samples"]) == 3


def test_a_commit_without_the_worker_is_refused(tmp_path):
    with pytest.raises(UsageError, match="predates the interleave worker"):
        interleave._check_worker(tmp_path, "v0.1", "0123456789abcdef")
    interleave._check_worker(ROOT, "WORKTREE", "")  # this checkout has it


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
        a, b = interleave.interleaved_runs("WORKTREE", "WORKTREE", sweep, store=store,
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
