"""Achieved TFLOP/s of a point, and the fraction of this machine's *measured* peak.

achieved = FLOPs per image x batch x factor / median latency, with factor 1 for a
forward and 3 for a training step (backward costs about twice the forward: one matmul
for the input gradient and one for the weight gradient per forward matmul; the
optimizer's elementwise update is negligible next to them).

The peak is a large matmul in the run's dtype, measured once per (machine, device,
dtype) and cached in the store's `peaks` table: GPU 8192^2, timed with CUDA events
around bursts of back-to-back calls; CPU 2048^2 (halved while one call takes over half
the time budget, e.g. bfloat16 without fast CPU kernels) timed with perf_counter for
about a second. The peak is the *median* per-call time, not the best single call: a
lucky repetition (boost clock, an idle neighbour) is not what the machine sustains.

On CPU the thread count is part of the device key ("cpu-2t"). On CUDA float32 two
switches decide whether work runs on TF32 tensor cores: `torch.backends.cuda.matmul.
allow_tf32` for matmuls (the transformers' work) and `torch.backends.cudnn.allow_tf32`
for convolutions (ResNet's; on by default). The peak a point is divided by is keyed on
the one switch that governs *its* work ("float32+tf32mm" for a transformer,
"float32+tf32conv" for ResNet, plain "float32" when that switch is off) and measured
with TF32 exactly when that switch is on. Keying both on either switch divided true-fp32
transformer matmuls (the `full` preset, with cuDNN's default TF32 on) by a TF32 peak, about
7x too high on Hopper; dividing a TF32 convolution net by an IEEE peak gave fractions
above 1. A peak measured while other processes load the machine is too low and stays
cached: delete the row from `peaks` (or use a fresh database) to re-measure.
"""
from __future__ import annotations

import time

__all__ = ["TRAIN_FLOPS_FACTOR", "achieved_tflops", "efficiency_pass", "measure_peak",
           "peak_key", "peak_tflops"]

TRAIN_FLOPS_FACTOR = 3.0


def achieved_tflops(flops_per_image, batch: int, latency_ms, workload: str = "infer"):
    """TFLOP/s delivered by one call of `batch` images taking `latency_ms`."""
    if not flops_per_image or not latency_ms or latency_ms <= 0:
        return None
    factor = TRAIN_FLOPS_FACTOR if workload == "train" else 1.0
    return flops_per_image * batch * factor / (latency_ms / 1e3) / 1e12


def peak_key(device: str, dtype: str, work: str = "matmul") -> tuple[str, str]:
    """(device key, dtype key) under which a peak is cached; `work` is what the point's
    heavy kernels are, "matmul" or "conv" (catalog.compute_kind)."""
    import torch

    if device.startswith("cuda"):
        return "cuda", dtype + ("+" + _TF32_NAMES[work] if _tf32_on(dtype, work) else "")
    return f"cpu-{torch.get_num_threads()}t", dtype


_TF32_NAMES = {"matmul": "tf32mm", "conv": "tf32conv"}


def _tf32_on(dtype: str, work: str) -> bool:
    """Does float32 `work` ("matmul" or "conv") run on TF32 tensor cores on CUDA now?"""
    import torch

    if dtype != "float32":
        return False
    if work not in _TF32_NAMES:
        raise ValueError(f"work must be one of {', '.join(_TF32_NAMES)}, got {work!r}")
    if work == "matmul":
        return bool(torch.backends.cuda.matmul.allow_tf32)
    return bool(torch.backends.cudnn.allow_tf32)


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


#: matmuls per timed burst on the GPU: back to back, as a model's GEMMs run, so the
#: number is what the GPU sustains rather than one call after an idle gap
_BURST = 10


def _matmul_cuda(n: int, dtype, min_time_s: float, *, allow_tf32: bool) -> tuple[float, dict]:
    import torch

    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    try:
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        c = torch.empty(n, n, device="cuda", dtype=dtype)
        for _ in range(3):
            torch.mm(a, b, out=c)
        torch.cuda.synchronize()
        per_call = []
        t0 = time.perf_counter()
        while len(per_call) < 5 or (time.perf_counter() - t0 < min_time_s and len(per_call) < 100):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(_BURST):
                torch.mm(a, b, out=c)
            e.record()
            e.synchronize()
            per_call.append(s.elapsed_time(e) / 1e3 / _BURST)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    del a, b, c
    torch.cuda.empty_cache()
    return _median(per_call), {"bursts": len(per_call), "calls_per_burst": _BURST,
                               "tf32": allow_tf32, "best_s": min(per_call)}


def _matmul_cpu(n: int, dtype, min_time_s: float) -> tuple[float, dict]:
    import torch

    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    c = torch.empty(n, n, dtype=dtype)
    times = []
    t0 = time.perf_counter()
    torch.mm(a, b, out=c)  # warm-up
    while len(times) < 3 or time.perf_counter() - t0 < min_time_s:
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        times.append(time.perf_counter() - t)
    return _median(times), {"reps": len(times), "best_s": min(times)}


#: Sizes of the CPU peak's matmul, smallest first: the largest whose call fits is used.
CPU_SIZES = (256, 512, 1024, 2048)


def _cpu_size(dtype, min_time_s: float) -> int:
    """The largest of CPU_SIZES whose call should take under half the window,
    predicted from one call of the smallest.

    Why from the smallest up: a dtype without fast kernels on this CPU (bfloat16 without
    AVX-512 BF16 on an AVX2 machine) runs a 2048 x 2048 matmul for well over a minute,
    so trying the largest first held a point past any --point-timeout."""
    import torch

    x = torch.randn(CPU_SIZES[0], CPU_SIZES[0], dtype=dtype)
    torch.mm(x, x)  # first call: kernel selection, not the rate
    t = time.perf_counter()
    torch.mm(x, x)
    rate = 2.0 * CPU_SIZES[0] ** 3 / max(time.perf_counter() - t, 1e-9)  # FLOP/s
    fits = [n for n in CPU_SIZES if 2.0 * n**3 / rate < min_time_s / 2]
    return fits[-1] if fits else CPU_SIZES[0]


def measure_peak(device: str, dtype: str, *, size: int | None = None, min_time_s: float = 1.0,
                 work: str = "matmul") -> tuple[float, dict]:
    """Measured TFLOP/s of an n x n matmul on `device` in `dtype`, and how it was taken;
    in float32 on CUDA, on TF32 tensor cores when `work`'s TF32 switch is on."""
    import torch

    tdtype = getattr(torch, dtype)
    if device.startswith("cuda"):
        n = size or 8192
        per_call, detail = _matmul_cuda(n, tdtype, min_time_s / 2,
                                        allow_tf32=_tf32_on(dtype, work))
    else:
        n = size or _cpu_size(tdtype, min_time_s)
        per_call, detail = _matmul_cpu(n, tdtype, min_time_s)
        detail["threads"] = torch.get_num_threads()
    tflops = 2.0 * n**3 / per_call / 1e12
    detail.update(size=n, dtype=dtype, median_s=per_call, method="matmul, median call")
    return tflops, detail


def peak_tflops(store, device: str, dtype: str, *, machine: str | None = None,
                work: str = "matmul") -> tuple[float, str]:
    """(peak TFLOP/s, 'cached' or 'measured'): from the store, else measured and stored."""
    from ..environment import machine_id

    machine = machine or machine_id()
    dev_key, dtype_key = peak_key(device, dtype, work)
    cached = store.get_peak(machine, dev_key, dtype_key) if store is not None else None
    if cached:
        return cached, "cached"
    tflops, detail = measure_peak(device, dtype, work=work)
    if store is not None:
        store.set_peak(machine, dev_key, dtype_key, tflops, detail)
    return tflops, "measured"


def efficiency_pass(store):
    """The extra pass `fn(ctx) -> dict`: achieved TFLOP/s and fraction of the peak."""
    from ..catalog import compute_kind, model_info

    peaks: dict = {}

    def run(ctx) -> dict:
        p, s = ctx.point, ctx.sweep
        flops = model_info(p.family, p.depth, width=s.width, img_size=s.img_size)["flops"]
        achieved = achieved_tflops(flops, p.batch, ctx.latency_ms, p.workload)
        work = compute_kind(p.family)
        key = (s.device, *peak_key(s.device, p.dtype, work))
        if key not in peaks:
            peaks[key] = peak_tflops(ctx.store or store, s.device, p.dtype, work=work)
        peak, source = peaks[key]
        return {
            "achieved_tflops": achieved,
            "peak_fraction": achieved / peak if achieved is not None and peak else None,
            "peak_tflops": peak,
            "peak_source": source,
            "flops_factor": TRAIN_FLOPS_FACTOR if p.workload == "train" else 1.0,
        }

    run.__name__ = "efficiency"
    return run
