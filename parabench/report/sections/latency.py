"""Latency against depth, and the parallel model over its serial twin at equal depth."""
from __future__ import annotations

import pandas as pd

from ...families import LAYER_COUNTED, LESS_WORK
from ..content import Missing, Section, fmt, table_from_frame
from ..figures import Metric, grid
from .context import CRITICAL_PATH_NOTE, ERRBAR, HOW, SETUP_KEYS, Context, family_sorted
from .load import BUSY_MARK, BUSY_NOTE, is_busy, load_bullets

__all__ = ["latency_section", "ratio_section"]


def latency_section(ctx: Context) -> Section:
    s = Section("latency", "Latency against depth")
    if ctx.ok.empty:
        s.missing.append(Missing("no successful latency measurement", HOW["run"]))
        return s
    s.bullets.extend(load_bullets(ctx.ok))
    if "noisy" in ctx.ok and (ctx.ok["noisy"] == 1).any():
        n = int((ctx.ok["noisy"] == 1).sum())
        s.bullets.append(f"{n} of {len(ctx.ok)} points are noisy (IQR above 10% of the "
                         "median): their error bars are wide and their fits less certain.")
    s.paragraphs.append(ERRBAR + " One panel per batch size (rows) and execution mode "
                        "(columns). On log-log axes a flat curve is horizontal and a curve "
                        "proportional to depth has slope 1.")
    for label, stem, g in ctx.setups():
        lin = g
        note = ""
        layer_counted = g["family"].isin(LAYER_COUNTED)  # depth = 18, 50...: not on a linear axis
        if g["family"].nunique() > 1 and layer_counted.any():
            lin = g[~layer_counted]
            note = " ResNet (depth = 18, 34, 50... layers) is shown on the log-log plot only."
        lat = [Metric("median_ms", "latency (ms)", lo="p10_ms", hi="p90_ms")]
        lat_log = [Metric("median_ms", "latency (ms)", logy=True, lo="p10_ms", hi="p90_ms")]
        f1 = grid(lin, ctx.figdir / f"latency_{stem}_linear.png", lat,
                  title=f"Latency vs depth, linear axes ({label})")
        f2 = grid(g, ctx.figdir / f"latency_{stem}_log.png", lat_log, logx=True,
                  title=f"Latency vs depth, log-log axes ({label})")
        for f, cap in ((f1, f"Median latency, linear axes: {label}.{note}"),
                       (f2, f"Median latency, log-log axes: {label}.")):
            fig = ctx.figure(f, cap)
            if fig:
                s.figures.append(fig)
    return s


def ratio_section(ctx: Context) -> Section:
    s = Section("ratio", "Para-Former over serial models at equal depth")
    r = ctx.ratios
    if r.empty:
        have = sorted(ctx.ok["family"].unique()) if not ctx.ok.empty else []
        s.missing.append(Missing(
            "needs a parallel family (paraformer-fused, paraformer-loop, paraformer-least-work "
            "or vit-parallel) and a serial one (paraformer-serial or vit) measured at the same "
            "depths, batch sizes and modes; measured families: "
            f"{', '.join(map(str, have)) or 'none'}", HOW["gpu"]))
        return s
    s.paragraphs.append(
        "Latency of the parallel model divided by a serial model with the same width and "
        "number of blocks (equal parameters and FLOPs up to biases). Two serial references: "
        "paraformer-serial is Para-Former's own code with one branch of depth d (same "
        "modules and kernels), so parallel / paraformer-serial isolates what running the "
        "branches in parallel buys; vit is timm's ViT, what users compare against, whose "
        "code carries a different framework overhead. Below 1 (dashed line) the parallel "
        "model is faster.")
    s.paragraphs.append(CRITICAL_PATH_NOTE)
    fr = pd.to_numeric(r["flops_ratio"], errors="coerce")
    less = r["family"].isin(LESS_WORK)
    equal = fr[~less].dropna()
    if not equal.empty:
        s.paragraphs.append(f"FLOPs ratio parallel/serial over the equal-work pairs: "
                            f"{equal.min():.3f} to {equal.max():.3f}.")
    least = fr[less].dropna()
    if not least.empty:
        s.paragraphs.append(
            "paraformer-least-work is not an equal-FLOPs comparison: it computes only what the "
            f"CLS head reads and does {least.min():.3f} to {least.max():.3f} of the serial "
            "model's FLOPs here (its FLOPs ratio). It shows how fast the same output can be "
            "had, beside the equal-work executions, never in their place.")
    r = r.assign(pair=r["family"] + " / " + r["serial"])
    for i, (keys, g) in enumerate(r.groupby(list(SETUP_KEYS), sort=True)):
        label = " · ".join(f"{k} {v}" for k, v in zip(SETUP_KEYS, keys, strict=True))
        p = grid(g, ctx.figdir / f"ratio_s{i}.png",
                 [Metric("ratio", "parallel / serial latency", logy=True)],
                 row="pair", col="mode", hue="batch", logx=True, hline=1.0,
                 title=f"Para-Former over serial at equal depth ({label})")
        fig = ctx.figure(p, f"Latency ratio at equal depth: {label}.")
        if fig:
            s.figures.append(fig)
    index = ["family", "serial", "mode", "batch"]
    cell = r.assign(cell=[(fmt(v) + "×" + (BUSY_MARK if is_busy(b) else "")) if pd.notna(v)
                          else "–" for v, b in zip(r["ratio"], r.get("busy", [None] * len(r)),
                                                   strict=True)])
    wide = family_sorted(cell.pivot_table(index=index, columns="depth", values="cell",
                                          aggfunc="first").reset_index())
    cols = {"family": "family", "serial": "over", "mode": "mode", "batch": "batch"}
    cols.update({d: f"depth {d}" for d in wide.columns if d not in cols})
    table = table_from_frame(wide, "Parallel / serial latency ratio", cols,
                             {d: lambda v: "–" if pd.isna(v) else str(v)
                              for d in cols if d not in index})
    if any(is_busy(b) for b in r.get("busy", [])):
        table.note = " ".join(x for x in (table.note, BUSY_NOTE) if x)
    s.tables.append(table)
    return s
