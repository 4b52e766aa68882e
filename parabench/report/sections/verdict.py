"""The answer first: is latency flat in depth, per family and mode, and where it stops."""
from __future__ import annotations

import pandas as pd

from ... import analysis
from ...families import LESS_WORK
from ..content import Missing, Section, Table, fmt, table_from_frame
from .context import CRITICAL_PATH_NOTE, HOW, Context, critical_path, family_sorted, slope_text, varying

__all__ = ["verdict_section"]


def verdict_section(ctx: Context) -> Section:
    s = Section("verdict", "Verdict: is latency flat in depth?")
    if ctx.fits.empty or (ctx.fits["verdict"] == "not fitted").all():
        what = ("no successful measurement in the selected run(s)" if ctx.ok.empty
                else "no regime was measured at two or more depths, so nothing can be fitted")
        s.missing.append(Missing(what, HOW["run"]))
        return s
    ends = family_sorted(analysis.flatness_end(ctx.fits))
    show = varying(ends, ("device", "dtype", "workload", "width"))
    s.lead += _headline(ends, show)
    fits = {tuple(f[k] for k in analysis.REGIME_KEYS): f for f in ctx.fits.to_dict("records")}
    for row in ends.to_dict("records"):
        def at(batch, row=row):
            f = fits[tuple(batch if k == "batch" else row[k] for k in analysis.REGIME_KEYS)]
            return (f"{f['verdict']} at batch {batch} (growth x{f['growth']:.2f}, "
                    f"{slope_text(f['b_ms_per_layer'], f['b_lo'], f['b_hi'])})")

        batches = row["batches"]
        if row["ends_at"] is None:
            text = f"flat at every measured batch; {at(batches[-1])}"
        elif row["flat_up_to"] is None:
            text = f"not flat even at the smallest batch: {at(batches[0])}"
        else:
            text = f"{at(row['flat_up_to'])}; flatness ends: {at(row['ends_at'])}"
        who = " · ".join(str(row[k]) for k in ["family", "mode"] + show)
        s.bullets.append(f"{who}: {text}.")
    ratio_table = _ratio_headline_table(ctx.ratios)
    if ratio_table:
        s.tables.append(ratio_table)
    s.notes.append(
        "How to read it: per regime, latency = a + b·depth is fitted to the median latency "
        "at each depth; b is the cost of one more layer (Para-Former: one more branch), "
        "with a 95% confidence interval covering both curvature (t-interval on the medians) "
        "and measurement noise (bootstrap of the raw samples). Growth is the deepest "
        "point's latency over the shallowest's. Flat: latency grows slower than "
        f"depth^{analysis.FLAT_ELASTICITY} (over depths 1 to 48: less than "
        f"x{48 ** analysis.FLAT_ELASTICITY:.2f}); "
        f"linear: at least like depth^{analysis.LINEAR_ELASTICITY} (1 to 48: "
        f"x{48 ** analysis.LINEAR_ELASTICITY:.1f} or more); sub-linear in between; "
        "inconclusive: it grows more than flat allows, but the interval of b includes 0.")
    s.notes.append(CRITICAL_PATH_NOTE)
    cols = {"family": "family", "mode": "mode", "batch": "batch"}
    cols.update({k: k for k in show})
    cols.update({"depths": "depths", "path": "critical path at max",
                 "latency_min_ms": "ms at min", "latency_max_ms": "ms at max",
                 "growth": "growth ×", "b_ms_per_layer": "ms/layer",
                 "ci": "95% CI", "elasticity": "elasticity", "verdict": "verdict"})
    f = ctx.fits
    fits = f.assign(
        depths=[f"{fmt(a)}–{fmt(b)}" for a, b in zip(f["depth_min"], f["depth_max"], strict=True)],
        ci=[f"{fmt(a)} to {fmt(b)}" for a, b in zip(f["b_lo"], f["b_hi"], strict=True)],
        path=[critical_path(fam, d) for fam, d in zip(f["family"], f["depth_max"], strict=True)])
    s.tables.append(table_from_frame(fits, "Depth-scaling fit per regime", cols))
    return s


def _headline(ends: pd.DataFrame, show: list[str]) -> list[str]:
    """One or two sentences: which families are flat in depth, and up to which batch."""
    flat, never, noisy = {}, [], []
    for row in ends.to_dict("records"):
        fam = " · ".join(str(row[k]) for k in ["family"] + show)
        if row["family"] in LESS_WORK:
            fam += " (the same output for less work, not an equal-FLOPs comparison)"
        if row["flat_up_to"] is None:
            (noisy if row["verdicts"][0] == "inconclusive" else never).append(fam)
        else:
            where = ("at every measured batch" if row["ends_at"] is None
                     else f"up to batch {row['flat_up_to']}, not at {row['ends_at']}")
            flat.setdefault(fam, []).append(f"{row['mode']} {where}")
    out = []
    if flat:
        out.append("Flat in depth: " + "; ".join(
            f"{fam} ({', '.join(parts)})" for fam, parts in flat.items()) + ".")
    else:
        out.append("No family is flat in depth at any measured batch size.")
    nf = list(dict.fromkeys(f for f in never if f not in flat))
    if nf:
        out.append("Not flat in any measured regime: " + ", ".join(nf) + ".")
    nz = list(dict.fromkeys(f for f in noisy if f not in flat and f not in nf))
    if nz:
        out.append("Too noisy to call at the smallest batch (the slope's interval includes "
                   "0): " + ", ".join(nz) + ". Measure longer (--min-time) or on a quiet "
                   "machine.")
    return out


def _ratio_headline_table(ratios: pd.DataFrame) -> Table | None:
    """Parallel over serial latency at each pair's deepest common depth, per batch, with
    the critical paths and the FLOPs ratio (below 1 only for the least-work execution)."""
    if ratios.empty:
        return None
    rows, batches = [], sorted(ratios["batch"].unique())
    for (fam, twin, mode), g in ratios.groupby(["family", "serial", "mode"], sort=True):
        dmax = g["depth"].max()
        deep = g[g["depth"] == dmax]
        at = dict(zip(deep["batch"], deep["ratio"], strict=True))
        flops = pd.to_numeric(deep["flops_ratio"], errors="coerce").dropna()
        rows.append([f"{fam} / {twin}", str(mode), str(dmax),
                     f"{critical_path(fam, dmax)} vs {critical_path(twin, dmax)}",
                     f"{flops.median():.2f}" if not flops.empty else "–"]
                    + [f"{at[b]:.2f}×" if b in at else "–" for b in batches])
    return Table("Parallel over serial latency at the deepest common depth "
                 "(below 1: the parallel model is faster; paraformer-serial is Para-Former's "
                 "own code with one branch, vit is timm's)",
                 ["pair", "mode", "depth", "critical path", "FLOPs ratio"]
                 + [f"batch {b}" for b in batches], rows)
