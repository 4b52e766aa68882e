"""Two-sample statistics for latency comparisons: is B slower than A, by how much, how sure?

Everything works on raw per-call samples (milliseconds or seconds, the unit cancels):

* effect size: the ratio of medians B/A, with a percentile-bootstrap confidence
  interval (A and B resampled independently, fixed seed, so the same data always
  gives the same interval);
* test: two-sided Mann-Whitney U on the raw samples (no normality assumption;
  latency distributions are skewed and heavy-tailed);
* verdict: the rule in `verdicts.verdict` (significant, interval clear of 1, beyond
  the minimum effect; its default is measured, see `verdicts.DEFAULT_THRESHOLD`).

When a side has no raw samples (asv results recorded without --record-samples),
`compare_summaries` falls back to the medians and their confidence intervals.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .verdicts import DEFAULT_ALPHA, DEFAULT_THRESHOLD, verdict

__all__ = [
    "MIN_SAMPLES",
    "SampleComparison",
    "bootstrap_ratio_ci",
    "compare_samples",
    "compare_summaries",
    "mann_whitney_p",
]

#: Fewer samples than this on either side: no test, verdict "inconclusive".
MIN_SAMPLES = 5
DEFAULT_BOOTSTRAP = 2000
DEFAULT_SEED = 20240721


@dataclass(frozen=True)
class SampleComparison:
    """Outcome of comparing contender B against baseline A for one benchmark."""

    ratio: float  # median(B) / median(A); > 1 means B is slower
    ci_low: float
    ci_high: float
    p_value: float | None
    verdict: str
    median_a: float
    median_b: float
    n_a: int
    n_b: int

    def to_dict(self) -> dict:
        return asdict(self)


def _clean(samples) -> np.ndarray:
    a = np.asarray(samples if samples is not None else [], dtype=float).ravel()
    return a[np.isfinite(a)]


def bootstrap_ratio_ci(
    a,
    b,
    *,
    confidence: float = 0.95,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of median(b) / median(a)."""
    a, b = _clean(a), _clean(b)
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    med_a = np.median(a[rng.integers(0, a.size, size=(n_boot, a.size))], axis=1)
    med_b = np.median(b[rng.integers(0, b.size, size=(n_boot, b.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = med_b / med_a
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)


def mann_whitney_p(a, b) -> float | None:
    """Two-sided Mann-Whitney U p-value, None when a side is too small to test."""
    from scipy.stats import mannwhitneyu

    a, b = _clean(a), _clean(b)
    if a.size < MIN_SAMPLES or b.size < MIN_SAMPLES:
        return None
    if np.ptp(np.concatenate([a, b])) == 0:  # all values identical: no evidence of change
        return 1.0
    return float(mannwhitneyu(b, a, alternative="two-sided").pvalue)


def compare_samples(
    a,
    b,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    confidence: float = 0.95,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> SampleComparison:
    """Compare raw samples of contender `b` against baseline `a` (lower is better)."""
    a, b = _clean(a), _clean(b)
    med_a = float(np.median(a)) if a.size else math.nan
    med_b = float(np.median(b)) if b.size else math.nan
    ratio = med_b / med_a if a.size and b.size and med_a > 0 else math.nan
    lo, hi = bootstrap_ratio_ci(a, b, confidence=confidence, n_boot=n_boot, seed=seed)
    p = mann_whitney_p(a, b)
    v = verdict(ratio, lo, hi, p, threshold=threshold, alpha=alpha)
    return SampleComparison(ratio, lo, hi, p, v, med_a, med_b, int(a.size), int(b.size))


def compare_summaries(
    median_a: float,
    ci_a: tuple[float, float] | None,
    median_b: float,
    ci_b: tuple[float, float] | None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    n_a: int = 0,
    n_b: int = 0,
) -> SampleComparison:
    """Fallback without raw samples: the ratio of medians, with a conservative interval
    built from each median's own interval (lo_B / hi_A, hi_B / lo_A). No test, so a
    verdict needs that interval clear of 1 plus the minimum effect; without intervals
    the verdict is "inconclusive"."""
    ratio = median_b / median_a if median_a and median_a > 0 else math.nan
    if ci_a is None or ci_b is None or not all(
        map(math.isfinite, (*ci_a, *ci_b))
    ) or ci_a[0] <= 0:
        return SampleComparison(
            ratio, math.nan, math.nan, None, "inconclusive", median_a, median_b, n_a, n_b
        )
    lo, hi = ci_b[0] / ci_a[1], ci_b[1] / ci_a[0]
    v = verdict(ratio, lo, hi, None, threshold=threshold, tested=False)
    return SampleComparison(ratio, lo, hi, None, v, median_a, median_b, n_a, n_b)
