"""Latency of a callable, measured honestly.

GPU: each call is bracketed by CUDA events and the host synchronises once, after the
last call, to read them all; a host clock around asynchronous GPU work would measure
the launch, not the work. CPU: perf_counter_ns around each call. In both cases the
warm-up (module load, autotuning, compilation) is excluded, the number of timed calls
is chosen from the warm-up's speed so the timed window lasts at least `min_time_s`,
and every raw sample is returned.

Warm-up is by count *and* by time. An idle H200 sits at 345 MHz and takes tens to
hundreds of milliseconds of work to reach its boost clock; ten calls at batch 1 are
about 10 ms, after a model build of 0.5-2 s with the GPU idle, so the first points of
a sweep (and the batch-1 latencies behind the flatness claim) would be timed on a cold
clock. So on CUDA warm-up lasts at least `CUDA_WARMUP_S` of device time by default,
and the SM clock at the start and end of the timed window is recorded with the point.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from .device import sync

__all__ = ["CUDA_WARMUP_S", "estimate_calls", "make_input", "measure", "warm_up",
           "warmup_seconds"]

#: the least warm-up on a GPU, in seconds of device time (clocks ramp up under load)
CUDA_WARMUP_S = 0.2
#: a warm-up by time never makes more calls than this (a step of microseconds)
_MAX_WARMUP_CALLS = 100_000


def warmup_seconds(device: str, asked: float | None) -> float:
    """The warm-up time a point gets: what was asked, else CUDA_WARMUP_S on a GPU and
    none on a CPU (whose clock ramps in microseconds)."""
    if asked is not None:
        return asked
    return CUDA_WARMUP_S if device.startswith("cuda") else 0.0


def make_input(batch: int, img_size: int, device: str = "cpu", dtype=None, *, seed: int = 0):
    """A seeded random image batch (N, 3, H, W), drawn on `device` itself: a batch of 256
    at 224 px drawn on the CPU and copied over costs more than the point's timed work.
    (So the values depend on the device kind; they are the same on every run.)"""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(batch, 3, img_size, img_size, generator=g, device=device)
    return x.to(dtype=dtype or torch.float32)


def estimate_calls(per_call_s: float, *, min_samples: int, max_samples: int, min_time_s: float) -> int:
    """How many timed calls fill `min_time_s`, within [min_samples, max_samples]."""
    want = int(min_time_s / per_call_s) + 1 if per_call_s > 0 else max_samples
    return max(min_samples, min(max_samples, want))


def measure(
    fn: Callable[[], object],
    *,
    device: str = "cpu",
    warmup: int = 3,
    warmup_s: float | None = None,
    min_samples: int = 10,
    max_samples: int = 200,
    min_time_s: float = 0.25,
    conditions: dict | None = None,
) -> list[float]:
    """Warm `fn` up (at least `warmup` calls and `warmup_seconds(device, warmup_s)`
    seconds), then call it n timed times; return n latencies in milliseconds.

    `conditions`, a dict, receives how the warm-up went (calls, seconds) and on CUDA the
    SM clock (MHz, via NVML) when the timed window opens and closes."""
    seconds = warmup_seconds(device, warmup_s)
    calls, elapsed, per_call = warm_up(fn, device, warmup, seconds)
    n = estimate_calls(
        per_call, min_samples=min_samples, max_samples=max_samples, min_time_s=min_time_s
    )
    clock = _sm_clock_reader(device) if conditions is not None else None
    if conditions is not None:
        conditions.update(warmup_calls=calls, warmup_s=round(elapsed, 4))
        if clock:
            conditions["sm_clock_mhz_start"] = clock()
    if device.startswith("cuda"):
        out = _measure_cuda(fn, n)
    else:
        out = _measure_cpu(fn, n)
    if clock:
        conditions["sm_clock_mhz_end"] = clock()
    return out


def warm_up(fn, device: str, calls: int, seconds: float) -> tuple[int, float, float]:
    """Run `fn` at least `calls` times and for at least `seconds` (synchronising on a GPU,
    so the time is the device's, not the launches'). Returns (calls made, seconds taken,
    seconds per call of the later half: the first calls carry one-off costs)."""
    sync(device)
    t0 = time.perf_counter()
    done, half_t, half_n = 0, t0, 0
    while done < calls or (seconds > 0 and time.perf_counter() - t0 < seconds
                           and done < _MAX_WARMUP_CALLS):
        fn()
        if seconds > 0:
            sync(device)
        done += 1
        if done == (calls + 1) // 2:  # the per-call estimate starts after the first half
            sync(device)
            half_t, half_n = time.perf_counter(), done
    sync(device)
    end = time.perf_counter()
    later = done - half_n
    per_call = (end - half_t) / later if later > 0 else ((end - t0) / done if done else 0.0)
    return done, end - t0, per_call


def _sm_clock_reader(device: str):
    """A zero-argument reader of the SM clock in MHz (None when NVML cannot say), or None
    off CUDA."""
    if not device.startswith("cuda"):
        return None
    from . import nvml

    index = int(device.split(":", 1)[1]) if ":" in device else 0
    h = nvml.cuda_handle(index)

    def read():
        if isinstance(h, nvml.Missing):
            return None
        v = nvml.query("nvmlDeviceGetClockInfo", h, nvml.CLOCK_SM)
        return None if isinstance(v, nvml.Missing) else int(v)

    return read


def _measure_cpu(fn, n: int) -> list[float]:
    clock = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t = clock()
        fn()
        out[i] = clock() - t
    return [t / 1e6 for t in out]


def _measure_cuda(fn, n: int) -> list[float]:
    import torch

    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for s, e in zip(starts, ends, strict=True):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()  # the one sync: read every event after the last call
    return [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]
