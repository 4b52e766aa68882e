"""NVML telemetry of a point: a sampler thread and an energy window.

Every NVML call goes through `parabench.measure.nvml.query`, so a machine without the
library, without a driver, without permission or with a GPU that lacks a counter gets
missing values with the reason, never an exception. The telemetry pass, after the
latency pass and on the same model:

1. once per family, re-measures latency with the sampler thread running
   (`sampler_latency_ratio` is its median over the latency pass's median: what sampling
   costs the measurement; it depends on the sampler, not on the point);
2. runs the step for at least `min_window_s` (1 s; NVML's total-energy counter updates
   about every 100 ms, so a shorter window is mostly quantisation) and reads the
   total-energy counter (mJ) at the edges: joules per image and mean watts. The calls
   are paced, at most `IN_FLIGHT` queued on the GPU: a CUDA-graph replay is one launch,
   so an unpaced host loop queues hundreds of calls in its one second and the window
   then waits tens of seconds for them. A GPU without the counter (pre-Volta) falls back
   to integrating the sampled power over the window.
Telemetry runs at the sweep's largest batch only (`min_batch`), and in CUDA-graph mode
when the sweep has it (`modes`): energy per image at batch 1, or with eager launch gaps,
is mostly the idle GPU's power, and a second per point is what made a GPU sweep slow.

The sampler (every 50 ms) records, per sample: board power, NVML's utilisation rates
read in one call, SM clock, temperature, memory used and the clock-event ("throttle")
reasons. Power is NVML's instantaneous field (NVML_FI_DEV_POWER_INSTANT) where the
driver has it: since Ampere nvmlDeviceGetPowerUsage is a one-second average, which a
50 ms sampler only resamples; `power_source` says which was read. The utilisation
rates are named for what NVML measures: `gpu_busy_pct`, the share of the last sample
period in which any kernel ran (not SM occupancy: one tiny kernel counts as busy), and
`mem_busy_pct`, the share in which device memory was read or written. `throttled` is
set when a reason that costs performance (power cap, thermal, hardware slowdown, power
brake) was active in any sample.
"""
from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import deque

from . import nvml
from .device import sync

__all__ = ["IN_FLIGHT", "PERF_LIMITING", "SAMPLE_INTERVAL_S", "Sampler", "decode_reasons",
           "energy_window", "measure_telemetry", "missing_result", "telemetry_pass"]

#: sampling period: NVML's utilisation and instantaneous power update at about this rate
SAMPLE_INTERVAL_S = 0.05
#: calls allowed in flight on the GPU during the energy window
IN_FLIGHT = 2

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
    """reader name -> zero-argument NVML reader returning {field: number} (or Missing)."""

    def one(field, fn, *args, scale=1.0):
        def read():
            v = nvml.query(fn, h, *args)
            return v if isinstance(v, nvml.Missing) else {field: v * scale}
        return read

    def utilisation():  # one NVML call gives both rates of the same period
        u = nvml.query("nvmlDeviceGetUtilizationRates", h)
        return u if isinstance(u, nvml.Missing) else {"gpu_busy_pct": u.gpu,
                                                      "mem_busy_pct": u.memory}

    def mem_used():
        m = nvml.query("nvmlDeviceGetMemoryInfo", h)
        return m if isinstance(m, nvml.Missing) else {"mem_used_mb": m.used / 2**20}

    def reasons():
        r = nvml.query_any(_REASON_CALLS, h)
        return r if isinstance(r, nvml.Missing) else {"reasons": r}

    return {
        "power": _power_reader(h),
        "utilisation": utilisation,
        "sm_clock": one("sm_clock_mhz", "nvmlDeviceGetClockInfo", nvml.CLOCK_SM),
        "temperature": one("temp_c", "nvmlDeviceGetTemperature", _TEMPERATURE_GPU),
        "mem_used": mem_used,
        "reasons": reasons,
    }


def _power_reader(h):
    """Board power in watts: the instantaneous field where the driver has it, else the
    (on Ampere and later, one-second averaged) power usage. Decided on the first read."""
    choice: dict = {}

    def read():
        if choice.get("source", "instant") == "instant":
            mw = nvml.field_value(h, nvml.FI_DEV_POWER_INSTANT, "power_instant")
            if not isinstance(mw, nvml.Missing):
                choice["source"] = "instant"
                return {"power_w": mw / 1000.0, "power_source": "instant"}
            if "source" in choice:
                return mw
        mw = nvml.query("nvmlDeviceGetPowerUsage", h)
        if isinstance(mw, nvml.Missing):
            return mw
        choice["source"] = "average"
        return {"power_w": mw / 1000.0, "power_source": "nvmlDeviceGetPowerUsage (1 s average)"}

    return read


class Sampler:
    """A daemon thread sampling NVML every `interval_s` while in a `with` block.

    A reader that NVML cannot serve is asked once, its reason kept in `unsupported`,
    and not asked again (an unsupported call costs as much as a good one)."""

    def __init__(self, handle, interval_s: float = SAMPLE_INTERVAL_S):
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
        for name, read in list(self._readers.items()):
            v = read()
            if isinstance(v, nvml.Missing):
                self.unsupported[name] = v.reason
                del self._readers[name]
            else:
                s.update(v)
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

        for field, stats in (("power_w", ("mean", "max")), ("gpu_busy_pct", ("mean",)),
                             ("mem_busy_pct", ("mean",)), ("sm_clock_mhz", ("mean", "min")),
                             ("temp_c", ("max",)), ("mem_used_mb", ("max",))):
            values = col(field)
            if values:
                for stat in stats:
                    fn = statistics.fmean if stat == "mean" else (max if stat == "max" else min)
                    out[f"{field}_{stat}"] = float(fn(values))
        sources = col("power_source")
        if sources:
            out["power_source"] = sources[-1]
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


class _Paced:
    """Keeps at most `depth` calls queued on the GPU: after each call an event is
    recorded, and the host waits for the call `depth` back before issuing more."""

    def __init__(self, device: str, depth: int = IN_FLIGHT):
        from .device import is_cuda

        self.cuda, self.depth = is_cuda(device), depth
        self.pending: deque = deque()

    def after_call(self) -> None:
        if not self.cuda:
            return  # CPU calls are synchronous
        import torch

        ev = torch.cuda.Event()
        ev.record()
        self.pending.append(ev)
        if len(self.pending) > self.depth:
            self.pending.popleft().synchronize()


def energy_window(step, *, handle, images_per_call: int, device: str = "cpu",
                  min_window_s: float = 1.0, sampler: Sampler | None = None) -> dict:
    """Call `step`, paced, for at least `min_window_s`; energy from NVML's total-energy
    counter at the window's edges (else from `sampler`'s power)."""
    sync(device)
    e0 = nvml.query("nvmlDeviceGetTotalEnergyConsumption", handle)  # mJ since driver load
    t0 = time.perf_counter()
    calls = 0
    paced = _Paced(device)
    while True:
        step()
        paced.after_call()
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
                      cuda_index: int = 0, interval_s: float = SAMPLE_INTERVAL_S,
                      min_window_s: float = 1.0, timing: dict | None = None) -> dict:
    """Sampler-overhead latency (when `latency_ms` is given), then the energy window
    with the sampler running. Without NVML every value is missing with the reason;
    nothing raises."""
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


def telemetry_pass(*, min_batch: int = 1, modes: tuple[str, ...] | None = None,
                   interval_s: float = SAMPLE_INTERVAL_S, min_window_s: float = 1.0):
    """The extra pass `fn(ctx) -> dict`: NVML telemetry on CUDA for points of at least
    `min_batch` images (and, if given, in one of `modes`), the sampler's cost measured
    on the first such point of each family; on CPU it only records why there is none
    (NVML measures GPUs)."""
    overhead_seen: set[str] = set()

    def run(ctx) -> dict:
        device = ctx.sweep.device
        if not device.startswith("cuda"):
            ok, reason = nvml.status()
            why = "NVML measures GPUs; this point ran on the CPU"
            return missing_result(why if ok else f"{why} ({reason})")
        if ctx.point.batch < min_batch:
            return missing_result(f"telemetry runs at batch {min_batch} in this sweep "
                                  f"(at batch {ctx.point.batch} energy is mostly idle power)")
        if modes and ctx.point.mode not in modes:
            return missing_result(f"telemetry runs in {'/'.join(modes)} mode in this sweep "
                                  "(the execution without launch gaps)")
        import torch

        s = ctx.sweep
        first_of_family = ctx.point.family not in overhead_seen
        overhead_seen.add(ctx.point.family)
        return measure_telemetry(
            ctx.step, batch=ctx.point.batch, device=device,
            latency_ms=ctx.latency_ms if first_of_family else None,
            cuda_index=torch.cuda.current_device(), interval_s=interval_s,
            min_window_s=min_window_s,
            # the latency pass has just warmed the device: no second warm-up by time
            timing={"warmup": 1, "warmup_s": 0.0, "min_samples": s.min_samples,
                    "max_samples": s.max_samples, "min_time_s": s.min_time_s},
        )

    run.__name__ = "telemetry"
    return run
