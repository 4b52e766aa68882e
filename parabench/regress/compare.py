"""Compare two sides benchmark by benchmark: ratio, confidence interval, verdict.

The result is a plain dict (JSON-able) that `render` renders and the store keeps
(`Store.add_comparison`) for the report:

    {"baseline": {kind, id, label, env, dirty}, "contender": {...},
     "measurement": "interleaved" | "separate runs" | "asv results",
     "threshold", "alpha", "mixed", "mixed_reasons", "counts": {verdict: n},
     "regressed": bool, "rows": [{key, family, depth, batch, mode, unit, ratio, ci_low,
     ci_high, p_value, verdict, baseline, contender, n_baseline, n_contender, note}]}

Row verdicts: the latency rule's slower / faster / unchanged / inconclusive
(`verdicts.verdict`), failed (ran in the baseline, error/OOM in the contender), fixed
(the reverse), skipped, missing (on one side only), and changed / unchanged for
tracked values, which are informational.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import UsageError
from .asv_results import default_asv_results
from .sides import Bench, Side, environment_differences, load_pair
from .verdicts import (
    COUNT_UNITS,
    DEFAULT_ALPHA,
    DEFAULT_COUNT_THRESHOLD,
    DEFAULT_THRESHOLD,
    count_verdict,
    is_regression,
)

__all__ = ["compare_sides", "run_compare"]


def _finite(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _row(key: str, a: Bench | None, b: Bench | None, threshold: float, alpha: float,
         count_threshold: float = DEFAULT_COUNT_THRESHOLD) -> dict:
    ref = b or a
    row = {
        "key": key, "family": ref.family, "depth": ref.depth, "batch": ref.batch,
        "mode": ref.mode, "unit": ref.unit, "ratio": None, "ci_low": None, "ci_high": None,
        "p_value": None, "verdict": None, "baseline": None, "contender": None,
        "n_baseline": len(a.samples) if a else 0, "n_contender": len(b.samples) if b else 0,
        "note": None,
    }
    if a is None or b is None:
        row["verdict"] = "missing"
        row["note"] = f"only in the {'contender' if a is None else 'baseline'}"
        return row
    row["baseline"], row["contender"] = _finite(a.value), _finite(b.value)
    if a.status != "ok" or b.status != "ok":
        if a.status == "ok":
            row["verdict"] = "failed"
            row["note"] = f"contender {b.status}: {b.reason or ''}".strip()
        elif b.status == "ok":
            row["verdict"] = "fixed"
            row["note"] = f"baseline {a.status}: {a.reason or ''}".strip()
        else:
            row["verdict"] = "skipped"
            row["note"] = b.reason or a.reason
        return row
    if a.unit in COUNT_UNITS and b.unit == a.unit:
        if a.value and b.value is not None:
            row["ratio"] = b.value / a.value
            row["verdict"] = count_verdict(row["ratio"], threshold=count_threshold)
        else:
            row["verdict"] = "inconclusive"
        spread = _count_spread(a.samples, b.samples)
        row["note"] = (f"instruction count (threshold {count_threshold:.1%}"
                       + (f", repeats within {spread:.2%})" if spread is not None else ")"))
        return row
    if not (a.is_latency and b.is_latency):
        if a.value is not None and b.value is not None and a.value != 0:
            row["ratio"] = b.value / a.value
            changed = abs(row["ratio"] - 1.0) > 1e-9
            row["verdict"] = "changed" if changed else "unchanged"
        else:
            row["verdict"] = "inconclusive"
        row["note"] = "tracked value (informational)"
        return row
    from . import stats

    if len(a.samples) and len(b.samples):
        paired = bool(a.turn_size and b.turn_size)  # interleaved: turns paired by round
        group = a.rounds_per_process if a.rounds_per_process == b.rounds_per_process else None
        c = stats.compare_samples(a.samples, b.samples, threshold=threshold, alpha=alpha,
                                  block_a=a.turn_size, block_b=b.turn_size, paired=paired,
                                  group=group)
        row["baseline"], row["contender"] = c.median_a, c.median_b
    else:
        c = stats.compare_summaries(a.value, a.ci, b.value, b.ci, threshold=threshold)
        row["note"] = "no raw samples: medians and their 99% intervals, no test"
    row.update(ratio=_finite(c.ratio), ci_low=_finite(c.ci_low), ci_high=_finite(c.ci_high),
               p_value=_finite(c.p_value), verdict=c.verdict)
    return row


def _count_spread(*sides) -> float | None:
    """Largest relative spread among one side's repeats: shown beside the verdict so a
    reader sees how far the threshold is from the counter's own noise."""
    spreads = [(max(s) - min(s)) / min(s) for s in sides if len(s) > 1 and min(s) > 0]
    return max(spreads) if spreads else None


def compare_sides(a: Side, b: Side, *, threshold: float = DEFAULT_THRESHOLD,
                  alpha: float = DEFAULT_ALPHA, allow_mixed: bool = False,
                  count_threshold: float = DEFAULT_COUNT_THRESHOLD) -> dict:
    """The comparison as a JSON-able dict: rows per benchmark plus what was compared.
    Raises UsageError when the environments differ and `allow_mixed` is False."""
    diffs = environment_differences(a, b)
    if diffs and not allow_mixed:
        raise UsageError(
            "refusing to compare results from different machines/environments ("
            + "; ".join(diffs) + "); pass --allow-mixed to compare anyway"
        )
    keys = sorted(set(a.benches) | set(b.benches))
    if not keys:
        raise UsageError(f"nothing to compare: {a.label} and {b.label} hold no benchmarks")
    rows = [_row(k, a.benches.get(k), b.benches.get(k), threshold, alpha, count_threshold)
            for k in keys]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return {
        "baseline": {"kind": a.kind, "id": a.ident, "label": a.label, "env": a.env,
                     "dirty": a.dirty},
        "contender": {"kind": b.kind, "id": b.ident, "label": b.label, "env": b.env,
                      "dirty": b.dirty},
        "measurement": ("asv results" if a.kind == "asv" else
                        "interleaved" if a.interleaved and b.interleaved else "separate runs"),
        "threshold": threshold,
        "count_threshold": count_threshold,
        "alpha": alpha,
        "mixed": bool(diffs),
        "mixed_reasons": diffs,
        "counts": counts,
        "regressed": any(is_regression(r) for r in rows),
        "rows": rows,
    }


def run_compare(a: str, b: str, *, db=None, asv_results=None, repo=".",
                threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
                allow_mixed: bool = False, machine: str | None = None, save: bool = True,
                count_threshold: float = DEFAULT_COUNT_THRESHOLD) -> dict:
    """Resolve A and B (store runs first, then git refs with asv results), compare, and
    keep the comparison in the store when both are store runs."""
    from ..store import Store, default_db_path

    prefer_asv = asv_results is not None
    # where asv keeps its results, by the one rule (named in errors even when absent)
    asv_dir = (Path(asv_results) if asv_results is not None
               else default_asv_results() or Path(".asv") / "results")
    db_path = Path(db) if db is not None else default_db_path()
    store = None
    if not prefer_asv and db_path.exists():
        store = Store(db_path, create=False, readonly=not save)
    elif db is not None and not prefer_asv:
        raise UsageError(f"no results database at {db_path}")
    try:
        sa, sb = load_pair(a, b, store=store, asv_results=asv_dir, repo=repo,
                           prefer_asv=prefer_asv, machine=machine)
        result = compare_sides(sa, sb, threshold=threshold, alpha=alpha,
                               allow_mixed=allow_mixed, count_threshold=count_threshold)
        if save and store is not None and sa.kind == "store":
            store.add_comparison(sa.ident, sb.ident, result)
        return result
    finally:
        if store is not None:
            store.close()
