"""Measuring one point in the process that runs it: latency, then the extra passes
(profile, telemetry, efficiency) over the same built model, so the profiler or the
NVML sampler never distorts the latency samples. Every executor's worker calls this;
it never raises for a bad point, it returns the point's row."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..catalog import model_info
from ..config import Point, Sweep
from ..errors import UsageError, is_oom, one_line
from ..records import Record
from .device import free_memory

__all__ = ["PassContext", "measure_point"]


@dataclass
class PassContext:
    """What an extra pass (profile, telemetry) gets after the latency pass of a point."""

    point: Point
    sweep: Sweep
    model: object
    step: Callable[[], object]
    latency_ms: float
    run_id: str
    store: object  # the run's parabench.store.Store, None where the worker cannot reach it



def measure_point(point: Point, sweep: Sweep, *, passes=(), run_id="", store=None) -> Record:
    """Measure one point; never raises except KeyboardInterrupt/SystemExit."""
    import torch

    from .load import LoadWindow
    from .memory import PeakMemory
    from .prepare import PointUnsupported, prepared
    from .timing import measure

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
