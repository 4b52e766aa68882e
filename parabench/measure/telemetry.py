"""NVML telemetry of a point: a sampler thread and an energy window.

Every NVML call goes through `parabench.measure.nvml.query`, so a machine without the
library, without a driver, without permission or with a GPU that lacks a counter gets
missing values with the reason, never an exception. The telemetry pass, after the
latency pass and on the same model:

1. re-measures latency with the sampler thread running (`sampler_latency_ratio` is its
   median over the latency pass's median: what sampling costs the measurement);
2. runs the step back to back for at least `min_window_s` (1 s; NVML's total-energy
   counter updates about every 100 ms, so a shorter window is mostly quantisation),
   synchronising CUDA at both ends, and reads the total-energy counter (mJ) at the
   edges: joules per image and mean watts. A GPU without that counter (pre-Volta)
   falls back to integrating the sampled power over the window.
The sampler (every ~15 ms) records power, SM and memory utilisation, SM clock,
temperature, memory used and the clock-event ("throttle") reasons; `throttled` is set
when a reason that costs performance (power cap, thermal, hardware slowdown, power
brake) was active in any sample.
"""
from __future__ import annotations

import itertools
import statistics
import threading
import time

from . import nvml
from .device import sync

__all__ = ["PERF_LIMITING", "Sampler", "decode_reasons", "energy_window", "measure_telemetry",
           "missing_result", "telemetry_pass"]

#: NVML clock-event reason bits (nvmlClocksEventReason*, formerly ...ThrottleReason*)
REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
#: the reasons that mean the GPU ran slower than it could have
PERF_LIMITING = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
_CLOCK_SM = 1  # NVML_CLOCK_SM
_TEMPERATURE_GPU = 0  # NVML_TEMPERATURE_GPU
_REASON_CALLS = ("nvmlDeviceGetCurrentClocksEventReasons",
                 "nvmlDeviceGetCurrentClocksThrottleReasons")


def decode_reasons(mask: int) -> list[str]:
    """Names of the reason bits set in `mask` (unknown bits as hex)."""
    names = [name for bit, name in REASONS.items() if mask & bit]
    unknown = mask & ~sum(REASONS)
    if unknown:
        names.append(hex(unknown))
    return names


def _readers(h):
    """field -> zero-argument NVML reader returning a number (or Missing)."""

    def util(attr):
        def read():
            u = nvml.query("nvmlDeviceGetUtilizationRates", h)
            return u if isinstance(u, nvml.Missing) else getattr(u, attr)
        return read

    def mem_used():
        m = nvml.query("nvmlDeviceGetMemoryInfo", h)
        return m if isinstance(m, nvml.Missing) else m.used / 2**20

    def power():
        p = nvml.query("nvmlDeviceGetPowerUsage", h)  # milliwatts
        return p if isinstance(p, nvml.Missing) else p / 1000.0

    return {
        "power_w": power,
        "sm_util": util("gpu"),
        "mem_util": util("memory"),
        "sm_clock_mhz": lambda: nvml.query("nvmlDeviceGetClockInfo", h, _CLOCK_SM),
        "temp_c": lambda: nvml.query("nvmlDeviceGetTemperature", h, _TEMPERATURE_GPU),
        "mem_used_mb": mem_used,
        "reasons": lambda: nvml.query_any(_REASON_CALLS, h),
    }


class Sampler:
    """A daemon thread sampling NVML every `interval_s` while in a `with` block.

    A field that NVML cannot give is asked once, its reason kept in `unsupported`, and
    not asked again (an unsupported call costs as much as a good one)."""

    def __init__(self, handle, interval_s: float = 0.015):
        self.handle, self.interval_s = handle, interval_s
        self.samples: list[dict] = []
        self.unsupported: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers = {} if isinstance(handle, nvml.Missing) else _readers(handle)
        if isinstance(handle, nvml.Missing):
            self.unsupported["device"] = handle.reason

    def sample_once(self) -> dict:
        s = {"t": time.perf_counter()}
        for field, read in list(self._readers.items()):
            v = read()
            if isinstance(v, nvml.Missing):
                self.unsupported[field] = v.reason
                del self._readers[field]
            else:
                s[field] = v
        return s

    def _loop(self) -> None:
        while True:
            self.samples.append(self.sample_once())
            if self._stop.wait(self.interval_s) or not self._readers:
                return

    def __enter__(self):
        if self._readers:
            self._thread = threading.Thread(target=self._loop, name="nvml-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict:
        """Means, extremes and throttle reasons over the samples taken."""
        out: dict = {"telemetry_samples": len(self.samples)}
        if len(self.samples) > 1:
            span = self.samples[-1]["t"] - self.samples[0]["t"]
            out["sample_interval_ms"] = span / (len(self.samples) - 1) * 1e3

        def col(field):
            return [s[field] for s in self.samples if field in s]

        for field, stats in (("power_w", ("mean", "max")), ("sm_util", ("mean",)),
                             ("mem_util", ("mean",)), ("sm_clock_mhz", ("mean", "min")),
                             ("temp_c", ("max",)), ("mem_used_mb", ("max",))):
            values = col(field)
            if values:
                for stat in stats:
                    fn = statistics.fmean if stat == "mean" else (max if stat == "max" else min)
                    out[f"{field}_{stat}"] = float(fn(values))
        masks = col("reasons")
        if masks:
            seen = 0
            for m in masks:
                seen |= int(m)
            out["throttle_reasons"] = decode_reasons(seen)
            out["throttled"] = bool(seen & PERF_LIMITING)
            out["throttled_fraction"] = sum(1 for m in masks if int(m) & PERF_LIMITING) / len(masks)
        if self.unsupported:
            out["telemetry_unsupported"] = dict(self.unsupported)
        return out

    def energy_from_power_j(self, t0: float, t1: float) -> float | None:
        """Energy over [t0, t1] by integrating the sampled power (trapezoids)."""
        pts = [(s["t"], s["power_w"]) for s in self.samples
               if "power_w" in s and t0 <= s["t"] <= t1]
        if len(pts) < 2:
            return None
        return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(pts))


def energy_window(step, *, handle, images_per_call: int, device: str = "cpu",
                  min_window_s: float = 1.0, sampler: Sampler | None = None) -> dict:
    """Call `step` back to back for at least `min_window_s`; energy from NVML's
    total-energy counter at the window's edges (else from `sampler`'s power)."""
    sync(device)
    e0 = nvml.query("nvmlDeviceGetTotalEnergyConsumption", handle)  # mJ since driver load
    t0 = time.perf_counter()
    calls = 0
    while True:
        step()
        calls += 1
        if time.perf_counter() - t0 >= min_window_s:
            break
    sync(device)
    t1 = time.perf_counter()
    e1 = nvml.query("nvmlDeviceGetTotalEnergyConsumption", handle)
    images = calls * images_per_call
    out = {"energy_window_s": t1 - t0, "energy_images": images}
    if not isinstance(e0, nvml.Missing) and not isinstance(e1, nvml.Missing):
        joules, out["energy_source"] = (e1 - e0) / 1000.0, "energy_counter"
    else:
        reason = e0.reason if isinstance(e0, nvml.Missing) else e1.reason
        joules = sampler.energy_from_power_j(t0, t1) if sampler is not None else None
        out["energy_counter_missing"] = reason
        out["energy_source"] = "sampled_power" if joules is not None else None
    if joules is None:
        out.update(energy_j_per_image=None, mean_power_w=None)
    else:
        out.update(energy_j_per_image=joules / images, mean_power_w=joules / (t1 - t0))
    return out


def missing_result(reason: str) -> dict:
    """Every telemetry value missing, with the reason recorded."""
    return {"energy_j_per_image": None, "mean_power_w": None, "throttled": None,
            "telemetry_missing": reason}


def measure_telemetry(step, *, batch: int, device: str = "cuda", latency_ms: float | None = None,
                      cuda_index: int = 0, interval_s: float = 0.015, min_window_s: float = 1.0,
                      timing: dict | None = None) -> dict:
    """Sampler-overhead latency, then the energy window with the sampler running.
    Without NVML every value is missing with the reason; nothing raises."""
    from .timing import measure

    ok, reason = nvml.status()
    if not ok:
        return missing_result(reason)
    handle = nvml.cuda_handle(cuda_index)
    if isinstance(handle, nvml.Missing):
        return missing_result(handle.reason)
    out: dict = {}
    if latency_ms:
        with Sampler(handle, interval_s):
            samples = measure(step, device=device, **(timing or {}))
        out["latency_ms_with_sampler"] = statistics.median(samples)
        out["sampler_latency_ratio"] = out["latency_ms_with_sampler"] / latency_ms
    with Sampler(handle, interval_s) as sampler:
        energy = energy_window(step, handle=handle, images_per_call=batch, device=device,
                               min_window_s=min_window_s, sampler=sampler)
    out.update(sampler.summary())
    out.update(energy)
    out.setdefault("throttled", None)
    return out


def telemetry_pass(*, interval_s: float = 0.015, min_window_s: float = 1.0):
    """The extra pass `fn(ctx) -> dict`: NVML telemetry on CUDA; on CPU it only records
    why there is none (NVML measures GPUs)."""

    def run(ctx) -> dict:
        device = ctx.sweep.device
        if not device.startswith("cuda"):
            ok, reason = nvml.status()
            why = "NVML measures GPUs; this point ran on the CPU"
            return missing_result(why if ok else f"{why} ({reason})")
        import torch

        s = ctx.sweep
        return measure_telemetry(
            ctx.step, batch=ctx.point.batch, device=device, latency_ms=ctx.latency_ms,
            cuda_index=torch.cuda.current_device(), interval_s=interval_s,
            min_window_s=min_window_s,
            timing={"warmup": 1, "min_samples": s.min_samples, "max_samples": s.max_samples,
                    "min_time_s": s.min_time_s},
        )

    run.__name__ = "telemetry"
    return run
