"""The one runner: every run, whatever it measures and however it schedules points,
starts, stays alive and ends here.

A measurement is (what: latency or instructions, `executors.PassSpec`) x (schedule: a
sweep of points here, or interleaved arms in regress/interleave.py) x (where: an
executor). Whatever the combination, `live_runs` is its run lifecycle: it starts the
run (or reopens it for `--resume`), stamps a heartbeat while points are measured, and
marks it `finished`, `interrupted` (Ctrl-C or SIGTERM: everything finished stays in the
store, and `--resume RUN` continues it) or `failed`.

In a sweep, a point that runs out of memory becomes an `oom` row (memory freed, the
sweep goes on); any other failure an `error` row with its reason; a mode the device
cannot do a `skipped` row. Each record is committed the moment it is handed back.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .catalog import check
from .config import Sweep
from .errors import Terminated, UsageError
from .progress import SweepProgress
from .store import Store

__all__ = ["RunStart", "check_device", "live_runs", "preflight", "raise_pending_interrupt",
           "run_sweep"]


@dataclass(frozen=True)
class RunStart:
    """What a new run's row says about it: the sweep (with the schedule's and the
    measurement's own keys, e.g. "interleaved", "counts"), preset name, command line and
    the environment of the code that measures it (with its git state)."""

    sweep: dict
    preset: str | None
    command: str
    env: dict


def check_device(sweep: Sweep) -> None:
    """Refuse, before anything is written, what this machine cannot run at all."""
    import torch

    if sweep.device == "cuda":
        if not torch.cuda.is_available():
            from .environment import why_no_cuda

            raise UsageError(f"--device cuda asked for, but {why_no_cuda()}")
        if "bfloat16" in sweep.dtypes and not torch.cuda.is_bf16_supported():
            raise UsageError("dtype bfloat16 is not supported by this GPU")
    elif "float16" in sweep.dtypes:
        raise UsageError("dtype float16 has no fast CPU kernels; use float32 or bfloat16 on CPU")


def preflight(sweep: Sweep) -> Sweep:
    """Every check that can refuse a sweep without measuring anything: fields, models
    buildable, device and dtypes available. Run it before opening the database."""
    sweep.validate()
    for fam in sweep.families:
        for depth in sweep.depths_for(fam):
            check(fam, depth, sweep.width, sweep.img_size)
    check_device(sweep)
    return sweep


#: Ctrl-C / SIGTERM received while a run is live and not yet acted on by the runner
_pending_interrupts: list[int] = []


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_interrupt(signum, frame):
    _pending_interrupts.append(signum)
    raise _interrupt(signum)


def raise_pending_interrupt() -> None:
    """Raise a Ctrl-C or SIGTERM that never reached the runner. Python raises a signal's
    exception in whatever code runs at that moment; in a finalizer or a callback whose
    exceptions it ignores ("Exception ignored in ...") the exception is printed and
    lost, and the run went on to its end with exit status 0. Loops that measure call
    this between points, so a swallowed interrupt still stops the run."""
    if _pending_interrupts:
        raise _interrupt(_pending_interrupts[-1])


@contextmanager
def _interrupts_remembered():
    """SIGINT and SIGTERM raise KeyboardInterrupt / Terminated, as Ctrl-C does, and are
    remembered until the run ends (see raise_pending_interrupt)."""
    try:
        old = {sig: signal.signal(sig, _on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _pending_interrupts.clear()


@contextmanager
def live_runs(store: Store, starts: list[RunStart] = (), *, resume: str | None = None
              ) -> Iterator[list[str]]:
    """The run lifecycle: yield the ids of new runs (one per `starts` item) or of the
    one run `resume` reopens; heartbeat while the body measures; then mark each run
    finished, interrupted (KeyboardInterrupt or SIGTERM, re-raised) or failed."""
    from .store import Heartbeat

    if resume:
        store.reopen_run(resume)
        run_ids = [resume]
    else:
        run_ids = [store.start_run(sweep=s.sweep, preset=s.preset, command=s.command,
                                   env=s.env) for s in starts]
    status = "failed"
    try:
        with Heartbeat(store.path, *run_ids), _interrupts_remembered():
            yield run_ids
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        for run_id in run_ids:
            store.finish_run(run_id, status)


def run_sweep(sweep: Sweep, store: Store, *, command: str = "", resume: str | None = None,
              passes=(), executor=None, progress: bool = True, log=print,
              run_info: dict | None = None, preset: str | None = None,
              env: dict | None = None) -> str:
    """Measure every point of `sweep` not yet in the run; return the run id.

    `executor` (see parabench.executors) says where points run and what is measured
    there; by default inline, with the ready-made `passes`. Whichever it is, only this
    function writes the store: each record is committed the moment the executor hands
    it back. `run_info` adds keys to the stored sweep (what a count measured), `preset`
    names the run (default: the sweep's name), `env` is the measured code's environment
    (default: this process's, with its git state)."""
    import torch

    from .environment import collect
    from .executors.inline import InlineExecutor

    executor = executor or InlineExecutor(built=list(passes))
    preflight(sweep)
    if sweep.threads:
        torch.set_num_threads(sweep.threads)
    if sweep.schedule == "interleaved":
        return _run_arms(sweep, store, executor, command=command, resume=resume, log=log)
    start = None if resume else RunStart(
        sweep={**sweep.to_dict(), **(run_info or {})}, preset=preset or sweep.name,
        command=command, env=env if env is not None else collect())
    with executor:  # a cluster that cannot be reached is refused before a run is made
        with live_runs(store, [start] if start else [], resume=resume) as (run_id,):
            _measure_points(sweep, store, executor, run_id, progress=progress, log=log)
    return run_id


def _run_arms(sweep: Sweep, store: Store, executor, *, command, resume, log) -> str:
    """The interleaved schedule: the sweep's families are arms of this parabench, timed
    in turns cell by cell, stored as one run (regress/interleave.py). Its workers are
    process workers: the executor's memory limit and point timeout apply."""
    from .regress.interleave import Arm, interleaved_runs

    if resume:
        raise UsageError("an interleaved run cannot be resumed (its turns must be taken "
                         "together): measure it again")
    if executor.name != "process":
        raise UsageError(f"an interleaved schedule runs its arms in worker processes; "
                         f"--executor {executor.name} cannot take turns")
    if executor.spec.kind != "latency" or executor.spec.profile:
        raise UsageError("an interleaved schedule times latency only (no --profile, no "
                         "counts)")
    ids = interleaved_runs(
        [Arm(family=f) for f in sweep.families], sweep, store=store, rounds=sweep.rounds,
        processes=sweep.processes, turn_ms=sweep.turn_ms, command=command,
        point_timeout=executor.point_timeout, memory_limit=executor.memory_limit, log=log)
    return ids[0]


def _measure_points(sweep: Sweep, store: Store, executor, run_id: str, *, progress, log):
    points = sweep.points()
    done = store.done_keys(run_id)
    todo = [p for p in points if executor.spec.key_of(p) not in done]
    log(f"run {run_id}: {len(todo)} of {len(points)} points to measure "
        f"on {sweep.device} into {store.path} ({executor.name} executor)")
    bar = SweepProgress(len(points), len(points) - len(todo), enabled=progress)
    try:
        with bar:
            for rec in executor.run(todo, sweep, run_id=run_id, store=store,
                                    started=bar.start):
                store.add_record(run_id, rec)
                bar.finished(rec)
                raise_pending_interrupt()
    except KeyboardInterrupt:
        log(f"interrupted: {bar.done} of {len(points)} points are stored"
            + (f"; continue with: python -m parabench run --db {store.path} --resume {run_id}"
               if executor.spec.kind == "latency" else ""))
        raise
