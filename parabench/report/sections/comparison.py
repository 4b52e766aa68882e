"""The last `parabench compare` saved in the database: which benchmarks regressed.

The stored result is `compare.compare_sides`'s dict, read as that one shape; whether a
row regressed is `regress.verdicts.is_regression`, the rule compare's exit code uses."""
from __future__ import annotations

import pandas as pd

from ...regress.verdicts import is_regression
from ..content import Missing, Section, table_from_frame
from .context import HOW, Context

__all__ = ["comparison_section"]

#: The columns of a compared row, in the order the tables show them.
COLUMNS = ("key", "family", "depth", "batch", "mode", "baseline", "contender", "unit",
           "ratio", "ci_low", "ci_high", "p_value", "verdict", "note", "n_baseline",
           "n_contender")


def comparison_section(ctx: Context) -> Section:
    s = Section("comparison", "Regressions in the last comparison")
    c = ctx.comparison
    if not c:
        s.missing.append(Missing("no comparison stored in this database", HOW["compare"]))
        return s
    result = c["result"]
    rows = result["rows"]
    s.paragraphs.append(f"Baseline {result['baseline']['label']} against contender "
                        f"{result['contender']['label']}, compared {c['created_at']}.")
    frame = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    regressed = frame[[is_regression(r) for r in rows]]
    if result["mixed"]:
        s.bullets.append("Compared across different machines or environments: "
                         + "; ".join(map(str, result["mixed_reasons"])) + ".")
    s.bullets.append("Verdicts: " + ", ".join(
        f"{n} {v}" for v, n in sorted(result["counts"].items(), key=str)) + ".")
    s.lead.append(f"{len(regressed)} regression(s) among {len(frame)} benchmark(s)."
                  if len(regressed) else f"No regression among {len(frame)} benchmark(s).")
    ratio_fmt = {"ratio": lambda v: "–" if pd.isna(v) else f"{v:.3f}×"}
    if len(regressed):
        s.tables.append(table_from_frame(regressed, "Regressions", formats=ratio_fmt))
    s.tables.append(table_from_frame(frame, "All compared benchmarks", formats=ratio_fmt))
    return s
