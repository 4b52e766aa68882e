"""Latency of a callable, measured honestly.

GPU: each call is bracketed by CUDA events and the host synchronises once, after the
last call, to read them all; a host clock around asynchronous GPU work would measure
the launch, not the work. CPU: perf_counter_ns around each call. In both cases the
warm-up (module load, autotuning, compilation) is excluded, the number of timed calls
is chosen from the warm-up's speed so the timed window lasts at least `min_time_s`,
and every raw sample is returned.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from .device import sync

__all__ = ["estimate_calls", "make_input", "measure"]


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
    min_samples: int = 10,
    max_samples: int = 200,
    min_time_s: float = 0.25,
) -> list[float]:
    """Call `fn` `warmup` times, then n timed times; return n latencies in milliseconds."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    per_call = (time.perf_counter() - t0) / warmup if warmup else 0.0
    n = estimate_calls(
        per_call, min_samples=min_samples, max_samples=max_samples, min_time_s=min_time_s
    )
    if device.startswith("cuda"):
        return _measure_cuda(fn, n)
    return _measure_cpu(fn, n)


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
