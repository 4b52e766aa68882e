"""Which extra passes (after the latency pass) a run performs for each point.

Order: efficiency (arithmetic on the latency, plus a peak measured once per machine
and dtype and cached), telemetry (NVML energy window at the sweep's largest batch, in
graph mode if the sweep has it; on CPU only the reason it is missing), profile
(torch.profiler trace). Each is its own pass over the same model, so neither the
sampler nor the profiler touches the latency samples.

A pass that fails must not throw away the point's latency: its exception becomes
`<pass>_error` in the record's extra (memory is freed first), and the point stays ok.
"""
from __future__ import annotations

from ..errors import one_line
from .device import free_memory

__all__ = ["extra_passes", "guarded"]


def guarded(fn):
    """Wrap an extra pass so that an exception becomes {'<name>_error': reason}."""
    name = getattr(fn, "__name__", "pass")

    def run(ctx) -> dict:
        try:
            return fn(ctx)
        except Exception as e:  # KeyboardInterrupt still stops the sweep
            reason = one_line(e)
        free_memory(ctx.sweep.device)  # after the except: the traceback no longer pins tensors
        return {f"{name}_error": reason}

    run.__name__ = name
    return run


def extra_passes(sweep, *, profile: bool, telemetry: bool, trace_dir, store) -> list:
    """The efficiency, telemetry and profile passes that apply to this sweep."""
    from .efficiency import efficiency_pass
    from .profile import profile_pass
    from .telemetry import telemetry_pass

    passes = [efficiency_pass(store)]
    if telemetry:
        passes.append(telemetry_pass(min_batch=max(sweep.batches),
                                     modes=("graph",) if "graph" in sweep.modes else None))
    if profile:
        passes.append(profile_pass(trace_dir or "traces"))
    return [guarded(p) for p in passes]
