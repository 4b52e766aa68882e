"""The one rule for "is this a regression": used by compare's exit code, the alert
renderers, the report's comparison section and the HTML colouring alike.

Two parts, both here so that the question is decided in one module:

* `verdict()`, the statistical rule that turns an effect (the ratio of medians B/A,
  its confidence interval, a p-value) into "slower" / "faster" / "unchanged" /
  "inconclusive": *significant* (when a test was possible), the whole interval on one
  side of 1, *and* beyond the minimum effect `threshold`. The test alone is not
  enough: with a few hundred samples it flags a 1% drift between two runs that no one
  can act on, and such drift (frequency scaling, a neighbour process, memory layout)
  is exactly what the threshold absorbs;
* `is_regression()`, which verdicts of a compared row fail the comparison.

Pure Python, no numpy: the command line imports it while building `--help`.
"""
from __future__ import annotations

import math

__all__ = [
    "COUNT_UNITS",
    "DEFAULT_COUNT_THRESHOLD",
    "DEFAULT_ALPHA",
    "DEFAULT_THRESHOLD",
    "IMPROVEMENT_VERDICTS",
    "REGRESSION_VERDICTS",
    "is_regression",
    "count_verdict",
    "verdict",
]

#: Minimum relative change (B/A - 1) before a difference counts as a regression.
#: Measured on the 2-core development VM with `compare --interleave` (10 no-change
#: comparisons x 3 points): no-change ratios stayed within 0.91-1.08; at 10% there was
#: no false alarm while 10% / 20% / 40% planted slowdowns were caught in 9/10, 10/10,
#: 10/10 comparisons (7.5% still had no false alarm, 5% had 2/10). Later, with the VM
#: shared by other work, 9 no-change comparisons x 4 points gave 0.82-1.12 and one CI
#: run 1.28 (see tests/test_compare_proof.py): on a busy machine raise --threshold.
#: Runs measured one after the other drift far more (up to 2.4x): there, use
#: --interleave or a much larger --threshold. Dedicated GPU runners may tighten it.
DEFAULT_THRESHOLD = 0.10
#: Minimum relative change of an instruction count (B/A - 1) that counts. Counts of one
#: point agreed to 0.01-0.07% between repeats in one process and to 0.03% (fused
#: Para-Former depth 4, batch 8) to 0.3% (tiny ViT) between processes on the development
#: VM (torch 2.14.1, valgrind 3.19), so 1% is over three times the worst spread and a
#: counted 5.4% plant was flagged with room to spare.
DEFAULT_COUNT_THRESHOLD = 0.01
#: Units compared by the exact-count rule instead of the latency statistics.
COUNT_UNITS = ("instructions",)
#: Significance level of the per-benchmark Mann-Whitney test.
DEFAULT_ALPHA = 0.01

#: What `verdict()` can answer.
VERDICTS = ("slower", "faster", "unchanged", "inconclusive")
#: Verdicts that make `compare` exit 1: got slower beyond the rule, or broke.
REGRESSION_VERDICTS = ("slower", "failed")
#: Verdicts that are good news: faster beyond the rule, or a failure that now runs.
IMPROVEMENT_VERDICTS = ("faster", "fixed")


def verdict(
    ratio: float,
    ci_low: float,
    ci_high: float,
    p_value: float | None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    tested: bool = True,
) -> str:
    """The rule: significant (when a test was possible), CI clear of 1, and beyond the
    minimum effect. Faster mirrors slower in log space (ratio <= 1 / (1 + threshold)).
    `tested=False` (no raw samples, so no test) decides on the interval alone."""
    if not all(map(math.isfinite, (ratio, ci_low, ci_high))):
        return "inconclusive"
    if tested and p_value is None:
        return "inconclusive"
    if p_value is not None and p_value >= alpha:
        return "unchanged"
    if ratio >= 1.0 + threshold and ci_low > 1.0:
        return "slower"
    if ratio <= 1.0 / (1.0 + threshold) and ci_high < 1.0:
        return "faster"
    return "unchanged"


def count_verdict(ratio: float, *, threshold: float = DEFAULT_COUNT_THRESHOLD) -> str:
    """The exact-count rule: a count is deterministic up to a fraction of a percent, so no
    test and no interval, only the ratio against a small threshold (faster mirrors
    slower in log space, as in `verdict`)."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "inconclusive"
    if ratio >= 1.0 + threshold:
        return "slower"
    if ratio <= 1.0 / (1.0 + threshold):
        return "faster"
    return "unchanged"


def is_regression(row: dict) -> bool:
    """A compared benchmark (a row of `compare`'s result) that regressed."""
    return row.get("verdict") in REGRESSION_VERDICTS
