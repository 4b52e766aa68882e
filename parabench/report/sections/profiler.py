"""The profiler's per-forward summary: why the latency curves look the way they do."""
from __future__ import annotations

import pandas as pd

from ..content import Missing, Section, Table, fmt
from ..figures import Metric
from .context import HOW, Context, family_sorted
from .metrics import metric_section

__all__ = ["profile_section"]


def profile_section(ctx: Context) -> Section:
    s = metric_section(
        ctx, "profile", "Profiler summary: why the curves look the way they do",
        [Metric("kernels_per_forward", "kernels (GPU) / ops (CPU) per forward", logy=True),
         Metric("gpu_busy_fraction", "GPU busy (% of timed window)", percent=True),
         Metric("cpu_dispatch_ms", "CPU dispatch per forward (ms)", logy=True)],
        Missing("no profiler summary", HOW["profile"]),
        "A launch-bound model shows many kernels per forward and a GPU that sits idle "
        "while the CPU issues them; a compute-bound one keeps the GPU busy.")
    ok = ctx.ok
    if "gpu_busy_fraction" in ok:
        busy = pd.to_numeric(ok["gpu_busy_fraction"], errors="coerce")
        low = ok[busy < 0.5]
        if not low.empty:
            fams = ", ".join(sorted(map(str, low["family"].unique())))
            s.bullets.append(f"{len(low)} point(s) kept the GPU busy less than half the time "
                             f"(launch-bound): {fams}.")
    table = _profile_table(ok)
    if table:
        s.tables.append(table)
    if "trace_dir" in ok and ok["trace_dir"].notna().any():
        n = ok["trace_dir"].nunique()
        s.bullets.append(f"{n} trace folder(s) recorded; open them with "
                         "`tensorboard --logdir <trace_dir>` (paths in data.csv).")
    return s


def _profile_table(ok: pd.DataFrame) -> Table | None:
    """Shallowest -> deepest profiled point per (family, mode, batch)."""
    cols = [c for c in ("kernels_per_forward", "gpu_idle_fraction", "cpu_dispatch_ms")
            if c in ok and pd.to_numeric(ok[c], errors="coerce").notna().any()]
    if not cols:
        return None
    sub = ok[ok[cols].notna().any(axis=1)].sort_values("depth")
    heads = {"kernels_per_forward": "kernels or ops / forward",
             "gpu_idle_fraction": "GPU idle", "cpu_dispatch_ms": "CPU dispatch (ms)"}
    show = {"gpu_idle_fraction": lambda v: "–" if pd.isna(v) else f"{100 * v:.0f}%"}
    rows = []
    for (fam, mode, batch), g in family_sorted(sub).groupby(
            ["family", "mode", "batch"], sort=False):
        first, last = g.iloc[0], g.iloc[-1]
        row = [str(fam), str(mode), str(batch), f"{first['depth']} → {last['depth']}"]
        for c in cols:
            f = show.get(c, fmt)
            row.append(f"{f(first[c])} → {f(last[c])}")
        rows.append(row)
    return Table("Profiled points, shallowest → deepest (every point is in data.csv)",
                 ["family", "mode", "batch", "depth"] + [heads[c] for c in cols], rows)
