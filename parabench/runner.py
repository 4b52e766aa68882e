"""Execute a sweep point by point, committing each point the moment it finishes.

A point that runs out of memory becomes an `oom` row (memory freed, the sweep goes
on); any other failure an `error` row with its reason; a mode the device cannot do a
`skipped` row. Ctrl-C or SIGTERM stops between or inside points: everything finished
stays in the store, the run is marked `interrupted`, and `--resume RUN` continues it.

Latency, profile and telemetry are separate passes over the same built model, so the
profiler or the NVML sampler never distorts the latency samples.
"""
from __future__ import annotations

import signal
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from .catalog import check, model_info
from .config import Point, Sweep
from .errors import Terminated, UsageError, is_oom, one_line
from .measure.device import free_memory
from .progress import SweepProgress
from .records import Record
from .store import Store

__all__ = ["PassContext", "check_device", "measure_point", "preflight", "run_sweep"]


@dataclass
class PassContext:
    """What an extra pass (profile, telemetry) gets after the latency pass of a point."""

    point: Point
    sweep: Sweep
    model: object
    step: Callable[[], object]
    latency_ms: float
    run_id: str
    store: Store


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


def measure_point(point: Point, sweep: Sweep, *, passes=(), run_id="", store=None) -> Record:
    """Measure one point; never raises except KeyboardInterrupt/SystemExit."""
    import torch

    from .measure.load import LoadWindow
    from .measure.memory import PeakMemory
    from .measure.prepare import PointUnsupported, prepared
    from .measure.timing import measure

    rec = Record.for_point(point, sweep)
    try:
        info = model_info(point.family, point.depth, width=sweep.width, img_size=sweep.img_size)
        rec.params, rec.flops, rec.flops_analytic = (
            info["params"], info["flops"], info["flops_analytic"]
        )
        pm = PeakMemory(sweep.device)  # opened by prepared(), before capture or compile
        with prepared(point, sweep, peak=pm) as prep:
            # how loaded the machine was while the samples were taken: every figure says
            conditions = {}  # warm-up calls and seconds, the SM clock on CUDA
            with LoadWindow(sweep.threads or torch.get_num_threads()) as load:
                rec.samples_ms = measure(
                    prep.step, device=sweep.device, warmup=sweep.warmup,
                    warmup_s=sweep.warmup_s, min_samples=sweep.min_samples,
                    max_samples=sweep.max_samples, min_time_s=sweep.min_time_s,
                    conditions=conditions,
                )
            rec.extra.update(conditions)
            mem = pm.result()
            rec.extra.update(load.result())
            rec.extra.update(prep.evidence())
            rec.peak_mem_allocated = mem["peak_mem_allocated"]
            rec.peak_mem_reserved = mem["peak_mem_reserved"]
            rec.peak_rss = mem["peak_rss"]
            rec.extra["rss_peak_is_lifetime"] = mem["rss_peak_is_lifetime"]
            ctx = PassContext(point, sweep, prep.model, prep.step, rec.stats.median, run_id,
                              store)
            for extra_pass in passes:
                rec.extra.update(extra_pass(ctx))
            del ctx
    except PointUnsupported as e:
        rec.status, rec.reason = "skipped", str(e)
    except UsageError as e:
        rec.status, rec.reason, rec.samples_ms = "error", str(e), []
    except Exception as e:  # one bad point must not end the sweep
        rec.status = "oom" if is_oom(e) else "error"
        rec.reason = one_line(e)
        rec.samples_ms = []  # e.g. a compile point that ran eagerly: its timings are not its own
    if rec.status != "ok":
        free_memory(sweep.device)  # now that the traceback and its tensors are gone
    return rec


@contextmanager
def _sigterm_as_interrupt():
    def handler(signum, frame):
        raise Terminated()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_sweep(sweep: Sweep, store: Store, *, command: str = "", resume: str | None = None,
              passes=(), executor=None, progress: bool = True, log=print) -> str:
    """Measure every point of `sweep` not yet in the run; return the run id.

    `executor` (see parabench.executors) says where points run; by default inline, with
    the ready-made `passes`. Whichever it is, only this function writes the store: each
    record is committed the moment the executor hands it back, and a heartbeat thread
    marks the run alive so that a killed run shows as interrupted."""
    import torch

    from .executors.inline import InlineExecutor

    executor = executor or InlineExecutor(built=list(passes))
    preflight(sweep)
    if sweep.threads:
        torch.set_num_threads(sweep.threads)
    with executor:  # a cluster that cannot be reached is refused before a run is made
        return _run_points(sweep, store, executor, command=command, resume=resume,
                           progress=progress, log=log)


def _run_points(sweep: Sweep, store: Store, executor, *, command, resume, progress, log) -> str:
    from .environment import collect
    from .store import Heartbeat

    if resume:
        store.reopen_run(resume)
        run_id = resume
    else:
        run_id = store.start_run(sweep=sweep.to_dict(), preset=sweep.name, command=command,
                                 env=collect())
    points = sweep.points()
    done = store.done_keys(run_id)
    todo = [p for p in points if p.key not in done]
    log(f"run {run_id}: {len(todo)} of {len(points)} points to measure "
        f"on {sweep.device} into {store.path} ({executor.name} executor)")
    bar = SweepProgress(len(points), len(points) - len(todo), enabled=progress)
    status = "failed"
    try:
        with Heartbeat(store.path, run_id), _sigterm_as_interrupt(), bar:
            for rec in executor.run(todo, sweep, run_id=run_id, store=store,
                                    started=bar.start):
                store.add_record(run_id, rec)
                bar.finished(rec)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        log(f"interrupted: {bar.done} of {len(points)} points are stored; "
            f"continue with: python -m parabench run --db {store.path} --resume {run_id}")
        raise
    finally:
        store.finish_run(run_id, status)
    return run_id
