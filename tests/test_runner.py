"""The runner: every point becomes a row, interruptions lose nothing, resumes finish."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from parabench import Store, Sweep, load
from parabench.runner import RunStart, live_runs, raise_pending_interrupt, run_sweep

TINY = dict(device="cpu", width="tiny", img_size=32, warmup=1, min_samples=3, min_time_s=0.0)


def test_sweep_records_every_point_with_stats_params_flops(tmp_path):
    sweep = Sweep(families=("vit", "paraformer-fused"), depths=(1, 2), batches=(1, 2), **TINY)
    with Store(tmp_path / "r.db") as store:
        rid = run_sweep(sweep, store, progress=False, log=lambda m: None)
        assert store.run(rid)["status"] == "finished"
    df = load(tmp_path / "r.db", rid)
    assert len(df) == 8 and set(df.status) == {"ok"}
    assert (df.n >= 3).all() and (df.median_ms > 0).all() and (df.peak_rss > 0).all()
    assert df.samples_ms.map(len).eq(df.n).all()
    # equal width: the serial ViT and Para-Former cost about the same FLOPs per layer
    d2 = df[(df.depth == 2) & (df.batch == 1)].set_index("family")
    assert d2.loc["vit", "flops"] == pytest.approx(d2.loc["paraformer-fused", "flops"], rel=0.05)
    assert (df.flops == df.flops_analytic).all()
    # every figure says how loaded the machine was; fused rows say how branches were grouped
    for e in df.extra:
        assert e["load_threads"] == torch.get_num_threads() and e["busy"] in (True, False)
        # signed: a quiet window reads a clock tick or two either side of zero
        assert e["load_1m_after"] >= 0 and e["other_cpu_s"] > -0.05
    fused = df[df.family == "paraformer-fused"].extra
    assert all(1 <= e["fused_group"] <= 2 and e["fused_budget_bytes"] > 0 for e in fused)
    assert not any("fused_group" in e for e in df[df.family == "vit"].extra)


def test_unsupported_mode_becomes_skipped_row(tmp_path):
    sweep = Sweep(families=("vit",), depths=(1,), modes=("eager", "graph"), **TINY)
    with Store(tmp_path / "r.db") as store:
        rid = run_sweep(sweep, store, progress=False, log=lambda m: None)
    df = load(tmp_path / "r.db", rid).set_index("mode")
    assert df.loc["eager", "status"] == "ok"
    assert df.loc["graph", "status"] == "skipped"
    assert "CUDA" in df.loc["graph", "reason"]


def test_out_of_memory_becomes_row_and_sweep_goes_on(tmp_path, monkeypatch):
    import parabench.catalog as catalog

    real_build = catalog.build

    class Hungry(torch.nn.Module):
        def forward(self, x):  # a real allocation failure from the CPU allocator
            return torch.empty(1 << 60, dtype=torch.uint8)

    def build(family, depth, **kw):
        return Hungry() if depth == 2 else real_build(family, depth, **kw)

    monkeypatch.setattr(catalog, "build", build)  # what every prepared point builds with
    sweep = Sweep(families=("vit",), depths=(1, 2, 4), **TINY)
    with Store(tmp_path / "r.db") as store:
        rid = run_sweep(sweep, store, progress=False, log=lambda m: None)
    df = load(tmp_path / "r.db", rid).set_index("depth")
    assert df.loc[2, "status"] == "oom" and "allocate" in df.loc[2, "reason"]
    assert df.loc[1, "status"] == "ok" and df.loc[4, "status"] == "ok"


def test_error_in_one_point_is_recorded_with_reason(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("kernel exploded\nsecond line")

    import parabench.workloads as wl

    monkeypatch.setattr(wl, "make_step", broken)
    sweep = Sweep(families=("vit",), depths=(1,), **TINY)
    with Store(tmp_path / "r.db") as store:
        rid = run_sweep(sweep, store, progress=False, log=lambda m: None)
    row = load(tmp_path / "r.db", rid).iloc[0]
    assert row.status == "error" and row.reason == "RuntimeError: kernel exploded"


def _spawn_run(db, *extra):
    cmd = [sys.executable, "-m", "parabench", "run", "--db", str(db), "--family", "vit",
           "--depth", "1,2,3,4,5,6", "--batch", "1", "--min-time", "0.3",
           "--warmup", "1", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _count(db):
    try:
        con = sqlite3.connect(db, timeout=0.2)  # never wait on a writer: poll again later
        try:
            return con.execute("SELECT count(*) FROM records").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError:  # locked, or still being created by the run: not yet
        return 0


#: each interrupts its own run: (signal, the exit status a shell reports for it)
INTERRUPTS = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -signal.SIGKILL)]


def test_interrupted_run_loses_nothing_and_resumes(tmp_path):
    """Ctrl-C, SIGTERM and SIGKILL, each sent to its own run once it has two records;
    the three runs (and then their resumes) go at once, so their start-ups overlap.
    Every assertion names the signal it is about."""
    dbs = {sig: tmp_path / f"{sig.name}.db" for sig, _ in INTERRUPTS}
    procs = {sig: _spawn_run(dbs[sig]) for sig, _ in INTERRUPTS}
    try:
        waiting, t0 = dict(procs), time.monotonic()
        while waiting:
            for sig, proc in list(waiting.items()):
                assert proc.poll() is None, (sig.name, proc.stderr.read())
                # stopped while its records are counted, so it cannot run to the end between
                # the count and the signal (a poller descheduled for a second once let it)
                proc.send_signal(signal.SIGSTOP)
                if _count(dbs[sig]) >= 2:
                    proc.send_signal(sig)  # delivered on SIGCONT (SIGKILL at once)
                    del waiting[sig]
                proc.send_signal(signal.SIGCONT)
            assert time.monotonic() - t0 < 180, f"no progress: {[s.name for s in waiting]}"
            time.sleep(0.05)
        errs = {sig: proc.communicate(timeout=60)[1] for sig, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    before, rids = {}, {}
    for sig, code in INTERRUPTS:
        proc, err = procs[sig], errs[sig]
        # 130 for Ctrl-C and 143 for SIGTERM, as shells report a process those signals ended
        assert proc.returncode == code, (sig.name, proc.returncode, err[-2000:])
        with Store(dbs[sig], create=False) as s:
            (rid,) = s.runs_frame().run_id
            before[sig] = s.records_frame([rid])
            run = s.run(rid)
        rids[sig] = rid
        assert len(before[sig]) >= 2 and set(before[sig].status) == {"ok"}, sig.name
        # none of them may read "running" forever
        assert run["status"] == "interrupted", (sig.name, run)
        if sig == signal.SIGKILL:
            # no chance to mark it, yet its PID is gone
            assert f"process {proc.pid}" in run["stale"] and "is gone" in run["stale"], run
        else:
            assert f"--resume {rid}" in err, (sig.name, err[-2000:])
    resumes = {sig: subprocess.Popen(
        [sys.executable, "-m", "parabench", "run", "--db", str(dbs[sig]), "--resume",
         rids[sig], "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for sig, _ in INTERRUPTS}
    outs = {sig: proc.communicate(timeout=300) for sig, proc in resumes.items()}
    for sig, _ in INTERRUPTS:
        assert resumes[sig].returncode == 0, (sig.name, outs[sig][1])
        after = load(dbs[sig], rids[sig])
        assert sorted(after.depth) == [1, 2, 3, 4, 5, 6], sig.name
        # finished points were kept as they were, not measured again
        kept = after.set_index("key").loc[before[sig].key]
        assert list(kept.id) == list(before[sig].id), sig.name
        assert ([json.dumps(x) for x in kept.samples_ms]
                == [json.dumps(x) for x in before[sig].samples_ms]), sig.name
        with Store(dbs[sig], create=False) as s:
            assert s.run(rids[sig])["status"] == "finished", sig.name


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # on purpose
def test_an_interrupt_a_finalizer_swallowed_still_ends_the_run(tmp_path):
    """Python prints and drops an exception raised inside __del__ ("Exception ignored
    in ..."): a Ctrl-C that lands there once let a run go on to its end with status 0."""

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the handler runs here, inside the finalizer

    with Store(tmp_path / "r.db") as store:
        with pytest.raises(KeyboardInterrupt):
            with live_runs(store, [RunStart({}, "t", "test", {})]) as (rid,):
                Finalized()  # dropped at once: its __del__ swallows the KeyboardInterrupt
                raise_pending_interrupt()  # between two points, as the runner does
        assert store.run(rid)["status"] == "interrupted"
        raise_pending_interrupt()  # the run is over: nothing is pending any more


def test_two_concurrent_runs_into_one_database_lose_nothing(tmp_path):
    db = tmp_path / "shared.db"
    Store(db).close()  # create the schema first; both writers then append
    procs = [_spawn_run(db, "--min-time", "0.05", "--no-progress") for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    df = load(db)
    assert df.run_id.nunique() == 2
    assert df.groupby("run_id").size().tolist() == [6, 6]
    assert set(df.status) == {"ok"}


@pytest.mark.parametrize("exc, oom", [
    (MemoryError(), True),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate "
                  "memory: you tried to allocate 1152921504606846976 bytes."), True),
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
     True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
    (RuntimeError("CUDA error: an illegal memory access was encountered"), False),
    (ValueError("out of memory"), False),  # only runtime errors carry allocator messages
])
def test_one_rule_says_what_ran_out_of_memory(exc, oom):
    from parabench.errors import is_oom, one_line

    assert is_oom(exc) is oom
    assert one_line(RuntimeError("first\nsecond")) == "RuntimeError: first"


def test_prepared_point_lets_go_of_everything_on_exit():
    """The model, input and step die with the `with` block, so the next point's memory
    peak is its own (on a GPU: the cached blocks are then handed back)."""
    import weakref

    from parabench.config import Point, preset
    from parabench.measure.prepare import PointUnsupported, prepared

    quick = preset("quick")
    with prepared(Point("vit", 1, 2, "float32", "eager", "infer"), quick) as prep:
        out = prep.step()
        assert out.shape == (2, 10)  # the tiny width's class count
        refs = [weakref.ref(prep.model), weakref.ref(prep.x)]
    del out
    assert all(r() is None for r in refs) and prep.step is None
    with pytest.raises(PointUnsupported, match="CUDA graphs"):
        with prepared(Point("vit", 1, 1, "float32", "graph", "infer"), quick):
            pass
