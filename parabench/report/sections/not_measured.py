"""Points of the selected runs without a latency: skipped, out of memory, errors."""
from __future__ import annotations

from ..content import Section, fmt, table_from_frame
from .context import Context, family_sorted, short

__all__ = ["not_measured_section"]


def not_measured_section(ctx: Context) -> Section:
    s = Section("not-measured", "Points not measured (skipped, out of memory, errors)")
    bad = ctx.records[ctx.records["status"] != "ok"] if not ctx.records.empty else ctx.records
    if bad.empty:
        s.paragraphs.append("Every point of the selected run(s) was measured.")
        return s
    counts = bad["status"].value_counts()
    s.bullets.append(", ".join(f"{n} {st}" for st, n in counts.items()) + ".")
    s.tables.append(table_from_frame(
        family_sorted(bad), "Points without a latency",
        {k: k for k in ("family", "depth", "batch", "dtype", "mode", "workload", "device",
                        "status", "reason")},
        {"reason": lambda v: short(fmt(v), 300)}))
    return s
