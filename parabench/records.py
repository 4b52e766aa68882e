"""What one measurement is: its identity, the raw samples, and statistics derived from them.

Raw samples are kept so that later comparisons (confidence intervals, tests) can be done
on the data itself rather than on a summary. This module is also the one place that
turns a Point into a Record (`Record.for_point`) and a Record into a database row and
back (`to_row` / `from_row`); the store only moves rows.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

#: IQR / median above this marks a point as noisy (the stats are still reported).
NOISY_IQR_FRACTION = 0.10

STATUSES = ("ok", "oom", "error", "skipped")

__all__ = ["METRIC_COLUMNS", "NOISY_IQR_FRACTION", "STATUSES", "Record", "SampleStats"]

#: Per-point metric columns that later passes (profile, telemetry, efficiency) fill in,
#: with their SQL types; any other metric a pass returns goes into `extra`.
METRIC_COLUMNS = {
    "trace_dir": "TEXT",
    "kernels_per_forward": "REAL",  # GPU kernels (or CPU ops) launched per forward
    "gpu_busy_fraction": "REAL",  # share of the timed window the GPU was busy
    "cpu_dispatch_ms": "REAL",  # host time to issue one forward
    "energy_j_per_image": "REAL",
    "mean_power_w": "REAL",
    "achieved_tflops": "REAL",
    "peak_fraction": "REAL",  # achieved / measured peak of this machine
    "throttled": "INTEGER",
}
#: Identity and cost fields copied verbatim between a Record and its row.
_PLAIN_FIELDS = ("key", "family", "depth", "batch", "dtype", "mode", "workload", "device",
                 "img_size", "width", "status", "reason", "unit", "params", "flops",
                 "flops_analytic", "peak_mem_allocated", "peak_mem_reserved", "peak_rss",
                 "machine")


@dataclass(frozen=True)
class SampleStats:
    """Summary of raw latency samples (milliseconds)."""

    n: int
    median: float
    mean: float
    p10: float
    p90: float
    iqr: float
    noisy: bool

    @classmethod
    def from_samples(cls, samples_ms) -> SampleStats:
        import numpy as np  # here, not at import: `parabench --help` must stay instant

        a = np.asarray(samples_ms, dtype=float)
        if a.size == 0:
            raise ValueError("no samples to summarise")
        q10, q25, q50, q75, q90 = np.percentile(a, [10, 25, 50, 75, 90])
        iqr = float(q75 - q25)
        noisy = bool(q50 > 0 and iqr / q50 > NOISY_IQR_FRACTION)
        return cls(int(a.size), float(q50), float(a.mean()), float(q10), float(q90), iqr, noisy)


@dataclass
class Record:
    """One measured point of a sweep, as stored in the `records` table.

    `key` identifies the point inside a run (so `--resume` can skip it); `samples_ms`
    holds one latency per timed call. Metrics that a pass did not produce stay None.
    """

    key: str
    family: str
    depth: int
    batch: int
    dtype: str
    mode: str
    workload: str
    device: str
    img_size: int
    width: str
    status: str = "ok"
    reason: str | None = None
    #: unit of the samples: "ms" for latencies; "instructions" (per forward) for counts,
    #: which share the table (and its samples/median columns) under their own keys
    unit: str = "ms"
    samples_ms: list[float] = field(default_factory=list)
    params: int | None = None
    flops: float | None = None  # forward FLOPs per image (2 * MACs)
    flops_analytic: float | None = None
    peak_mem_allocated: int | None = None  # bytes, GPU
    peak_mem_reserved: int | None = None  # bytes, GPU
    peak_rss: int | None = None  # bytes, process
    extra: dict = field(default_factory=dict)  # profile / telemetry / efficiency results
    #: where it was measured: `machine` (host/device, as environment.machine_id) and the
    #: measuring worker's environment (GPU, driver, CUDA, torch, host). With workers on
    #: several machines, one run's records can come from different places.
    machine: str | None = None
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @classmethod
    def for_point(cls, point, sweep, **fields) -> Record:
        """An empty record for `point` measured as `sweep` describes (device, width, size)."""
        return cls(key=point.key, family=point.family, depth=point.depth, batch=point.batch,
                   dtype=point.dtype, mode=point.mode, workload=point.workload,
                   device=sweep.device, img_size=sweep.img_size, width=sweep.width, **fields)

    def to_row(self) -> dict:
        """The `records` table's columns for this record (run id and time excluded):
        raw samples as JSON, statistics derived from them, metric columns from extra."""
        stats = self.stats
        row = {f: getattr(self, f) for f in _PLAIN_FIELDS}
        row.update(
            samples_json=json.dumps(self.samples_ms) if self.samples_ms else None,
            n=stats.n if stats else None,
            median_ms=stats.median if stats else None,
            mean_ms=stats.mean if stats else None,
            p10_ms=stats.p10 if stats else None,
            p90_ms=stats.p90 if stats else None,
            iqr_ms=stats.iqr if stats else None,
            noisy=int(stats.noisy) if stats else None,
            throughput=self.throughput,
            extra_json=json.dumps(self.extra, default=str) if self.extra else None,
            env_json=json.dumps(self.env, default=str) if self.env else None,
        )
        row.update({k: self.extra.get(k) for k in METRIC_COLUMNS if k in self.extra})
        return row

    @classmethod
    def from_row(cls, row) -> Record:
        """Inverse of `to_row`, from a mapping with the table's columns (or a records
        frame row, where samples and extra are already decoded)."""
        get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
        samples = get("samples_ms")
        if samples is None:
            raw = get("samples_json")
            samples = json.loads(raw) if isinstance(raw, str) else []
        extra = get("extra")
        if extra is None:
            raw = get("extra_json")
            extra = json.loads(raw) if isinstance(raw, str) else {}
        env = get("env")
        if env is None:
            raw = get("env_json")
            env = json.loads(raw) if isinstance(raw, str) else {}
        plain = {f: _none_if_nan(get(f)) for f in _PLAIN_FIELDS}
        plain["unit"] = plain["unit"] or "ms"  # rows and frames from before units: latencies
        return cls(**plain, samples_ms=list(samples), extra=dict(extra), env=dict(env))

    @property
    def stats(self) -> SampleStats | None:
        return SampleStats.from_samples(self.samples_ms) if self.samples_ms else None

    @property
    def throughput(self) -> float | None:
        """Images per second from the median latency (a train step counts its batch once)."""
        s = self.stats
        if self.unit != "ms" or s is None or not s.median or math.isnan(s.median):
            return None
        return self.batch / (s.median / 1e3)


def _none_if_nan(v):
    """pandas turns SQL NULL into NaN in numeric columns; a Record says None."""
    return None if isinstance(v, float) and math.isnan(v) else v
