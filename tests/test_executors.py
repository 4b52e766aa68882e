"""Where points run: the process executor's isolation and memory guard, records that say
which machine measured them, stale-run detection, and schema 3 opening databases that
today's main wrote. (The Ray executor against a real cluster: test_ray_cluster.py.)"""
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from parabench import Store, UsageError, load
from parabench.analysis import depth_fits, split_machines
from parabench.environment import machine_id
from parabench.executors import make_executor
from parabench.executors.common import FAULT_ENV, poisons_cuda
from parabench.records import Record
from parabench.regress.compare import compare_sides
from parabench.regress.sides import load_store_side
from parabench.store import SCHEMA_VERSION, STALE_AFTER_S, utc_now
from parabench.store.sealing import update_run

DATA = Path(__file__).parent / "data"
#: a small sweep whose sample count is fixed, so rows from two executors can be compared
FIXED = ("--family", "vit,paraformer-fused", "--depth", "1,2", "--batch", "1", "--warmup", "1",
         "--min-samples", "4", "--max-samples", "4", "--min-time", "0", "--no-progress")


def _rows(db) -> dict:
    df = load(db, "latest")
    return {r.key: (r.status, int(r.n) if r.status == "ok" else None) for r in df.itertuples()}


# -- schema 4 and databases written by schema 2 ------------------------------------------
def test_database_written_by_main_migrates_and_reads_back(tmp_path, cli):
    db = tmp_path / "v2.db"
    con = sqlite3.connect(db)
    con.executescript((DATA / "store_v2.sql").read_text())
    con.close()
    before = load(db)  # read-only: read as it is, nothing migrated
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 2
    assert len(before) == 4 and set(before.status) == {"ok"}
    # a record from before v3 says its run's machine, and has no environment of its own
    run_machine = sqlite3.connect(db).execute("SELECT machine FROM runs").fetchone()[0]
    assert set(before.machine) == {run_machine} and all(e == {} for e in before.env)
    with Store(db) as s:  # a writer migrates in place; old checksums stay valid
        assert s._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        (rid,) = s.runs_frame().run_id
        assert s.run(rid)["status"] == "finished" and s.run(rid)["heartbeat_at"] is None
        s.add_record(rid, Record(key="vit/d9", family="vit", depth=9, batch=1, dtype="float32",
                                 mode="eager", workload="infer", device="cpu", img_size=32,
                                 width="tiny", samples_ms=[1.0, 2.0], machine="elsewhere/cpu",
                                 env={"hostname": "elsewhere"}))
    after = load(db)
    assert not after.empty and len(after) == 5
    old = after[after.key != "vit/d9"]
    pd.testing.assert_series_equal(old.median_ms.reset_index(drop=True),
                                   before.median_ms.reset_index(drop=True))
    new = after[after.key == "vit/d9"].iloc[0]
    assert new.machine == "elsewhere/cpu" and new.env == {"hostname": "elsewhere"}
    res = cli("check", db=db)
    assert res.returncode == 0, res.stdout + res.stderr


def test_killed_run_reads_interrupted_and_a_live_one_cannot_be_resumed(tmp_path):
    with Store(tmp_path / "r.db") as s:
        rid = s.start_run(sweep={}, preset="t", command="", env={})
        run = s.run(rid)
        assert run["status"] == "running" and run["pid"] > 0 and run["host"]
        with pytest.raises(UsageError, match="still running"):  # this very process: alive
            s.reopen_run(rid)
        # its driver on another host went silent: interrupted, with the reason
        with s.transaction() as c:  # as that driver wrote it: sealed
            update_run(c, rid, host="elsewhere", heartbeat_at=utc_now())
        assert s.run(rid)["status"] == "running"  # a fresh heartbeat from elsewhere: alive
        old = (pd.Timestamp.now("UTC") - pd.Timedelta(seconds=STALE_AFTER_S + 5)).isoformat()
        with s.transaction() as c:
            update_run(c, rid, heartbeat_at=old)
        run = s.run(rid)
        assert run["status"] == "interrupted" and "no heartbeat from elsewhere" in run["stale"]
        assert list(s.runs_frame().status) == ["interrupted"]
        s.reopen_run(rid)  # a stale run can be resumed
        assert s.run(rid)["status"] == "running" and s.run(rid)["host"] != "elsewhere"


# -- the process executor ----------------------------------------------------------------
#: (fault, the signal its row names): each crashes the worker measuring vit/d1
CRASHES = [("abort", "SIGABRT"), ("segv", "SIGSEGV"), ("kill", "SIGKILL")]


@pytest.fixture(scope="module")
def sweeps(cli, tmp_path_factory):
    """{name: (result, database)} of every sweep this module runs through the CLI, all
    started at once: each pays a driver and one or two workers importing torch (4-10 s),
    and one waits 10 s on a hung point, so together they take about what the longest
    takes alone. Each test below checks its own sweep."""
    tmp = tmp_path_factory.mktemp("sweeps")
    plan = {
        "inline": (("--executor", "inline"), None),
        "process": (("--executor", "process"), None),
        **{fault: (("--executor", "process"), f"{fault}:vit/d1/") for fault, _ in CRASHES},
        "timeout": (("--point-timeout", "10"), "sleep:vit/d1/"),  # hangs for a minute
    }
    env = {"PARABENCH_DB": str(tmp / "default.db")}
    procs = {name: cli.start("run", *FIXED, *flags, db=tmp / f"{name}.db",
                             env={**env, **({FAULT_ENV: fault} if fault else {})})
             for name, (flags, fault) in plan.items()}
    procs["memory"] = cli.start(  # the memory guard's sweep: its own points
        "run", "--family", "vit", "--depth", "1,2", "--batch", "1000000", "--no-progress",
        "--memory-limit", "2G", db=tmp / "memory.db", env=env)
    try:
        return {name: (cli.finish(proc), tmp / f"{name}.db") for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_process_and_inline_give_the_same_rows_stamped_with_the_worker(sweeps):
    rows = {}
    for executor in ("inline", "process"):
        res, db = sweeps[executor]
        assert res.returncode == 0, (executor, res.stderr)
        assert f"({executor} executor)" in res.stderr
        rows[executor] = _rows(db)
        df = load(db)
        assert set(df.machine) == {machine_id()}, executor
        assert all(e.get("hostname") and e.get("torch") and "git" not in e for e in df.env)
    assert rows["inline"] == rows["process"]
    assert set(rows["process"].values()) == {("ok", 4)}


def test_a_point_that_kills_its_worker_becomes_a_row_and_the_sweep_goes_on(sweeps):
    """One sweep per way to die (every assertion names the fault it is about)."""
    for fault, signal_name in CRASHES:
        res, db = sweeps[fault]
        assert res.returncode == 0, (fault, res.stderr)
        df = load(db, "latest").set_index("key")
        bad = df.loc["vit/d1/b1/float32/eager/infer"]
        assert bad.status == "error", (fault, bad.status, bad.reason)
        assert signal_name in bad.reason and "worker process" in bad.reason, (fault, bad.reason)
        assert bad.machine == machine_id(), fault  # the worker that died said where it ran
        others = df.drop(index=bad.name)
        assert len(others) == 3 and set(others.status) == {"ok"}, (fault, others.status)
        assert res.stderr.count(") ready") == 2, (fault, res.stderr)  # replaced once
        with Store(db, create=False, readonly=True) as s:
            assert s.run(s.latest_run_id())["status"] == "finished", fault


def test_a_point_past_its_timeout_is_killed_and_becomes_a_row(sweeps):
    """A point that hangs (in a kernel, say) would hold its worker for ever: past
    --point-timeout the worker is killed, the point is an error row that says so, and
    a new worker measures the rest."""
    res, db = sweeps["timeout"]
    assert res.returncode == 0, res.stderr
    df = load(db, "latest").set_index("key")
    bad = df.loc["vit/d1/b1/float32/eager/infer"]
    assert bad.status == "error" and "timed out" in bad.reason and "10 s" in bad.reason
    assert bad.machine == machine_id()
    others = df.drop(index=bad.name)
    assert len(others) == 3 and set(others.status) == {"ok"}
    assert res.stderr.count(") ready") == 2
    with Store(db, create=False, readonly=True) as s:
        assert s.run(s.latest_run_id())["status"] == "finished"


def test_errors_that_break_a_cuda_context_are_told_from_ordinary_ones():
    def rec(status, reason):
        return Record(key="k", family="vit", depth=1, batch=1, dtype="float32", mode="eager",
                      workload="infer", device="cuda", img_size=32, width="tiny",
                      status=status, reason=reason)

    assert poisons_cuda(rec("error", "RuntimeError: CUDA error: device-side assert triggered"))
    assert poisons_cuda(rec("error", "AcceleratorError: CUDA error: an illegal memory access "
                                     "was encountered"))
    assert not poisons_cuda(rec("error", "ValueError: bad shape"))
    assert not poisons_cuda(rec("oom", "OutOfMemoryError: CUDA out of memory"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_a_device_side_assert_costs_one_point_and_its_worker(tmp_path, cli, monkeypatch):
    """After a device-side assert every later CUDA call in that process fails; the
    worker hands back its point and a new one measures the rest."""
    monkeypatch.setenv(FAULT_ENV, "cuda-assert:vit/d1/")
    db = tmp_path / "r.db"
    res = cli("run", *FIXED, "--device", "cuda", "--workers", "1", db=db)
    assert res.returncode == 0, res.stderr
    df = load(db, "latest").set_index("key")
    bad = df.loc["vit/d1/b1/float32/eager/infer"]
    assert bad.status == "error" and "device-side assert" in bad.reason
    assert "a new worker takes over" in bad.reason
    others = df.drop(index=bad.name)
    assert len(others) == 3 and set(others.status) == {"ok"}
    assert res.stderr.count(") ready") == 2
    gpu = torch.cuda.get_device_name(0)
    assert all(m.endswith(gpu) for m in df.machine) and all(e["gpu"]["available"] for e in df.env)


def test_memory_guard_turns_a_huge_batch_into_an_oom_row(sweeps):
    """The issue's case: on this CPU an unguarded worker grew to 24 GB until the kernel
    killed it. Under the guard the first large allocation fails: an `oom` row."""
    res, db = sweeps["memory"]
    assert res.returncode == 0, res.stderr
    df = load(db, "latest")
    assert list(df.status) == ["oom", "oom"]
    assert all("allocate" in r for r in df.reason)
    assert res.stderr.count(") ready") == 1  # the worker survived its oom and went on


def test_executor_flags_that_contradict_are_refused_in_one_line(cli, tmp_path):
    for args, says in [(("--executor", "process", "--ray-address", "auto"), "--ray-address"),
                       (("--executor", "inline", "--workers", "2"), "--workers"),
                       (("--executor", "inline", "--memory-limit", "2G"), "--memory-limit"),
                       (("--executor", "inline", "--point-timeout", "60"), "--point-timeout"),
                       (("--executor", "ray", "--point-timeout", "60"), "--point-timeout"),
                       (("--point-timeout", "0"), "--point-timeout"),
                       (("--memory-limit", "lots"), "--memory-limit"),
                       (("--memory-limit", "8"), "give a unit"),
                       (("--executor", "threads"), "--executor")]:
        res = cli("run", "--family", "vit", "--depth", "1", *args, db=tmp_path / "x.db")
        assert res.returncode == 2, (args, res.stderr)
        assert says in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "x.db").exists()


def test_missing_ray_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(UsageError, match=r"needs Ray.*pip install -e '\.\[ray\]'"):
        make_executor("ray").__enter__()


# -- records from several machines -------------------------------------------------------
def _record(machine: str, depth: int, median: float) -> Record:
    rng = np.random.default_rng(depth)
    return Record(key=f"vit/d{depth}/b1/float32/eager/infer", family="vit", depth=depth,
                  batch=1, dtype="float32", mode="eager", workload="infer", device="cpu",
                  img_size=32, width="tiny", machine=machine,
                  samples_ms=list(median * rng.lognormal(0, 0.01, 20)),
                  env={"hostname": machine.split("/")[0], "gpu": {"available": False}})


def test_compare_refuses_runs_whose_records_came_from_different_machines(tmp_path):
    env = {"machine": "driver/cpu", "torch": "2", "threads": 1, "gpu": {"available": False}}
    with Store(tmp_path / "r.db") as s:
        runs = []
        for machine in ("node-a/cpu", "node-b/cpu", "node-a/cpu"):
            rid = s.start_run(sweep={}, preset="t", command="", env=env)  # same driver
            for d in (1, 2):
                s.add_record(rid, _record(machine, d, 1.0 + d))
            s.finish_run(rid, "finished")
            runs.append(rid)
        a, b, a2 = (load_store_side(s, r) for r in runs)
    with pytest.raises(UsageError, match="node-a/cpu.*node-b/cpu|node-b/cpu.*node-a/cpu"):
        compare_sides(a, b)
    assert compare_sides(a, a2)["mixed"] is False  # same workers: compared


def test_report_fits_depth_per_machine_never_across_two():
    df = pd.DataFrame([{**_record(m, d, base + d).to_row(), "samples_ms": None}
                       for m, base in (("fast/cpu", 1.0), ("slow/cpu", 10.0)) for d in (1, 2, 4)])
    df["samples_ms"] = [json.loads(s) for s in df.samples_json]
    split = split_machines(df)
    assert set(split.device) == {"cpu @ fast/cpu", "cpu @ slow/cpu"}
    assert len(depth_fits(split)) == 2 and len(depth_fits(df)) == 1
    one = df[df.machine == "fast/cpu"]
    assert split_machines(one).equals(one)  # one machine: nothing renamed


def test_a_report_of_records_measured_on_two_machines_keeps_them_apart(tmp_path):
    from parabench.report import build_report

    runs = []
    with Store(tmp_path / "r.db") as s:  # one driver, two runs whose workers differ
        for machine, base in (("node-a/cpu", 1.0), ("node-b/cpu", 10.0)):
            rid = s.start_run(sweep={}, preset="t", command="", env={"machine": "driver/cpu"})
            for d in (1, 2, 4):
                s.add_record(rid, _record(machine, d, base + d))
            s.finish_run(rid, "finished")
            runs.append(rid)
    res = build_report(tmp_path / "r.db", runs, tmp_path / "out")
    md = res.markdown.read_text()
    assert "Measured on" in md and "node-a/cpu" in md and "node-b/cpu" in md
    fits = pd.read_csv(res.out / "fits.csv")
    assert sorted(fits.device) == ["cpu @ node-a/cpu", "cpu @ node-b/cpu"]
