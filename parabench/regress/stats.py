"""Two-sample statistics for latency comparisons: is B slower than A, by how much, how sure?

Per-call samples of one run are not independent: calls made within the same few
milliseconds share the machine's state (a neighbour's burst, the clock, the caches),
so treating 600 calls as 600 witnesses gave intervals far too narrow (a no-op
comparison: 1.014 [1.005, 1.024], p = 2.5e-11). The statistics therefore work on
*units* that are closer to independent, each the median of a block of consecutive
samples:

* interleaved runs: one unit per turn (`block` = calls per turn, stored with the
  record), and A's and B's turns are paired round by round (they ran back to back, so
  they share the drift: the paired difference cancels it). When the rounds come from
  several pairs of measuring processes (`group` rounds each), the unit is the pair:
  each process carries a bias of its own for its whole life, which rounds inside one
  pair cannot show (5 no-op comparisons on one pair each: 2 of 5 intervals missed 1,
  at -1.9% and +2.4%, p < 0.01);
* anything else (separate runs, asv samples): consecutive blocks of about sqrt(n)
  samples (at least 10 blocks), a plain block bootstrap. This fixes the within-run dependence only: the
  bias between two runs measured at different times is not in the data and no
  interval can show it (use `--interleave`).

On those units:

* effect size: over process pairs, the geometric mean of each pair's median per-round
  ratio, with a Student t interval and test on their logs (few pairs, so no
  bootstrap); paired within one pair of processes, the median over rounds of B's turn
  median / A's turn median; otherwise the ratio of the medians of the unit medians
  B/A; the last two with a percentile bootstrap interval over units (rounds when
  paired; fixed seed, so the same data always gives the same interval). On synthetic
  no-ops with a per-process bias of 2% (tests/test_stats.py), intervals over pairs
  contain 1 about 95% of the time, intervals over rounds of the same data in under 60%;
  intervals over single calls, where the calls of a turn share its drift, ~66%, over
  turns ~97%. On the 2-core VM (fused Para-Former depth 4, batch 8, 5 pairs of 30
  rounds): 20 of 20 no-op intervals contained 1, where one pair each had left 2 of 5
  outside;
* test: over process pairs, one-sample t on the pairs' log-ratios; paired rounds,
  Wilcoxon signed-rank on their log-ratios; else two-sided Mann-Whitney U on the units
  (no normality assumption; latencies are skewed and heavy-tailed);
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
    "block_medians",
    "bootstrap_ratio_ci",
    "compare_samples",
    "compare_summaries",
    "mann_whitney_p",
]

#: Fewer samples (or units) than this on either side: no test, verdict "inconclusive".
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


def block_medians(samples, block: int | None = None) -> np.ndarray:
    """Medians of consecutive blocks of `block` samples (default: see below); a
    short last block is kept when it holds at least half a block."""
    x = _clean(samples)
    if x.size == 0:
        return x
    if not block:  # about sqrt(n), but never fewer than 2 * MIN_SAMPLES units
        block = max(1, min(int(round(math.sqrt(x.size))), x.size // (2 * MIN_SAMPLES)))
    block = int(block)
    if block <= 1:
        return x
    starts = range(0, x.size, block)
    return np.array([np.median(x[i:i + block]) for i in starts
                     if x[i:i + block].size * 2 >= block or i == 0])


def _paired_ci(ratios, confidence, n_boot, seed) -> tuple[float, float]:
    """Bootstrap over rounds of the median per-round ratio B/A (a round's two turns ran
    back to back and share that moment's machine speed, so their ratio cancels it)."""
    rng = np.random.default_rng(seed)
    boots = np.median(ratios[rng.integers(0, ratios.size, size=(n_boot, ratios.size))], axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(boots, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _over_groups(per_round, group: int, confidence: float):
    """(ratio, lo, hi, p) from groups of `group` consecutive per-round ratios (one
    group per pair of processes): each group's median ratio is one unit; a t interval
    and test on their logs. None when fewer than two whole groups."""
    from scipy import stats as st

    n = per_round.size // group
    if n < 2:
        return None
    logs = np.log(np.median(per_round[: n * group].reshape(n, group), axis=1))
    mean, se = float(logs.mean()), float(logs.std(ddof=1) / math.sqrt(n))
    if se == 0.0:  # identical pairs: certain, whatever the mean
        p = 1.0 if mean == 0.0 else 0.0
        return math.exp(mean), math.exp(mean), math.exp(mean), p
    half = float(st.t.ppf(0.5 + confidence / 2.0, n - 1)) * se
    p = float(2.0 * st.t.sf(abs(mean) / se, n - 1))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half), p


def _wilcoxon_p(ua, ub) -> float | None:
    from scipy.stats import wilcoxon

    if ua.size < MIN_SAMPLES or np.any(ua <= 0) or np.any(ub <= 0):
        return None
    d = np.log(ub) - np.log(ua)
    if not np.any(d):
        return 1.0
    return float(wilcoxon(d).pvalue)


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
    block_a: int | None = None,
    block_b: int | None = None,
    paired: bool = False,
    group: int | None = None,
) -> SampleComparison:
    """Compare raw samples of contender `b` against baseline `a` (lower is better).

    `block_a`/`block_b`: samples per unit (calls per interleaved turn); None picks about
    sqrt(n). `paired`: the i-th units of A and B ran back to back (interleaved rounds);
    used when both sides have the same number of units. `group`: paired units per pair
    of measuring processes (interleaved over several pairs); the pairs are then the
    units. `n_a`/`n_b` report raw samples, the interval and the test use units (see
    the module docstring)."""
    a, b = _clean(a), _clean(b)
    ua, ub = block_medians(a, block_a), block_medians(b, block_b)
    med_a = float(np.median(ua)) if ua.size else math.nan
    med_b = float(np.median(ub)) if ub.size else math.nan
    ratio = med_b / med_a if ua.size and ub.size and med_a > 0 else math.nan
    if paired and ua.size == ub.size and ua.size and np.all(ua > 0):
        per_round = ub / ua
        grouped = _over_groups(per_round, group, confidence) if group else None
        if grouped is not None:
            ratio, lo, hi, p = grouped
        else:
            ratio = float(np.median(per_round))
            lo, hi = _paired_ci(per_round, confidence, n_boot, seed)
            p = _wilcoxon_p(ua, ub)
    else:
        lo, hi = bootstrap_ratio_ci(ua, ub, confidence=confidence, n_boot=n_boot, seed=seed)
        p = mann_whitney_p(ua, ub)
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
