"""What one measurement is: its identity, the raw samples, and statistics derived from them.

Raw samples are kept so that later comparisons (confidence intervals, tests) can be done
on the data itself rather than on a summary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: IQR / median above this marks a point as noisy (the stats are still reported).
NOISY_IQR_FRACTION = 0.10

STATUSES = ("ok", "oom", "error", "skipped")


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
    samples_ms: list[float] = field(default_factory=list)
    params: int | None = None
    flops: float | None = None  # forward FLOPs per image (2 * MACs)
    flops_analytic: float | None = None
    peak_mem_allocated: int | None = None  # bytes, GPU
    peak_mem_reserved: int | None = None  # bytes, GPU
    peak_rss: int | None = None  # bytes, process
    extra: dict = field(default_factory=dict)  # profile / telemetry / efficiency results

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def stats(self) -> SampleStats | None:
        return SampleStats.from_samples(self.samples_ms) if self.samples_ms else None

    @property
    def throughput(self) -> float | None:
        """Images per second from the median latency (a train step counts its batch once)."""
        s = self.stats
        if s is None or not s.median or math.isnan(s.median):
            return None
        return self.batch / (s.median / 1e3)
