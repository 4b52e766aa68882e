"""Figures for the report: seaborn styling over matplotlib's Agg backend, PNG files.

Every function takes a tidy DataFrame and a target path and returns the path it wrote,
or None when there was nothing to draw: the caller turns None into a "missing data"
section, so the report never shows an empty plot. matplotlib and seaborn are imported
inside the functions (they cost about a second to import).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import FAMILIES

__all__ = ["facet_lines", "history_figure"]

DPI = 96
PANEL_W, PANEL_H = 3.7, 2.7


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.05)
    return plt, sns


def _tx(value) -> str:
    """Text for matplotlib: a '$' in user data would otherwise start mathtext."""
    return str(value).replace("$", r"\$")


def _colors(levels, sns) -> dict:
    """Stable colours: a family keeps its colour in every figure of the report."""
    levels = list(dict.fromkeys(levels))
    if any(lvl in FAMILIES for lvl in levels):
        base = list(FAMILIES) + sorted((v for v in levels if v not in FAMILIES), key=str)
    else:
        try:
            base = sorted(levels)
        except TypeError:
            base = sorted(levels, key=str)
    pal = sns.color_palette("colorblind", max(len(base), 1))
    return {lvl: pal[i % len(pal)] for i, lvl in enumerate(base) if lvl in levels}


def _depth_axis(ax, depths, log: bool) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    if log:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(NullLocator())
    ticks = sorted({int(d) for d in depths})
    if len(ticks) > 9:  # keep labels legible: every other tick, ends included
        ticks = sorted(set(ticks[::2]) | {ticks[-1]})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())


def facet_lines(
    df: pd.DataFrame,
    path: Path,
    *,
    y: str,
    ylabel: str,
    title: str,
    x: str = "depth",
    xlabel: str = "depth (layers; Para-Former: branches)",
    row: str | None = "batch",
    col: str | None = "mode",
    hue: str = "family",
    lo: str | None = None,
    hi: str | None = None,
    logx: bool = False,
    logy: bool = False,
    hline: float | None = None,
    percent: bool = False,
) -> Path | None:
    """Line plot of `y` against `x`, one panel per (row, col) value, one line per `hue`.
    Error bars run from column `lo` to column `hi` when given. Returns None (and writes
    nothing) when no finite, plottable value is left."""
    d = df.copy()
    d[y] = pd.to_numeric(d[y], errors="coerce")
    d = d[np.isfinite(d[y])]
    if logy:
        d = d[d[y] > 0]
    if d.empty:
        return None
    plt, sns = _plt()
    rows = sorted(d[row].unique()) if row else [None]
    cols = sorted(d[col].unique()) if col else [None]
    colors = _colors(list(d[hue].unique()), sns)
    fig, axes = plt.subplots(
        len(rows), len(cols), squeeze=False, sharex=True, sharey="row" if not percent else True,
        figsize=(PANEL_W * len(cols) + 1.9, PANEL_H * len(rows) + 0.7),
    )
    handles = {}
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            sub = d
            if row:
                sub = sub[sub[row] == r]
            if col:
                sub = sub[sub[col] == c]
            label = " · ".join(_tx(f"{k} {v}") for k, v in ((row, r), (col, c)) if k)
            ax.set_title(label, fontsize=9)
            if sub.empty:
                ax.text(0.5, 0.5, "not measured", ha="center", va="center",
                        transform=ax.transAxes, color="0.5")
                continue
            for h in [lvl for lvl in colors if lvl in set(sub[hue])]:
                s = sub[sub[hue] == h].sort_values(x)
                yerr = None
                if lo and hi:
                    lo_v = pd.to_numeric(s[lo], errors="coerce").fillna(s[y])
                    hi_v = pd.to_numeric(s[hi], errors="coerce").fillna(s[y])
                    yerr = np.vstack([(s[y] - lo_v).clip(lower=0), (hi_v - s[y]).clip(lower=0)])
                scale = 100.0 if percent else 1.0
                art = ax.errorbar(
                    s[x], s[y] * scale, yerr=None if yerr is None else yerr * scale,
                    marker="o", ms=3.5, lw=1.4, capsize=2, elinewidth=0.9,
                    color=colors[h], label=_tx(h),
                )
                handles.setdefault(_tx(h), art)
            if hline is not None:
                ax.axhline(hline, color="0.3", lw=0.9, ls="--")
            if logy:
                ax.set_yscale("log")
            if x == "depth":
                _depth_axis(ax, d[x], logx)
            if i == len(rows) - 1:
                ax.set_xlabel(_tx(xlabel))
            if j == 0:
                ax.set_ylabel(_tx(ylabel))
    fig.suptitle(_tx(title), fontsize=11)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="center left",
                   bbox_to_anchor=(1.0, 0.5), frameon=False, title=_tx(hue))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def history_figure(hist: pd.DataFrame, changes: pd.DataFrame, path: Path, *,
                   max_panels: int = 6, max_lines: int = 6) -> Path | None:
    """Value per commit (in date order) for the benchmarks with the most change points,
    one panel per benchmark, change points marked with a red ring."""
    d = hist.copy()
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d = d[np.isfinite(d["value"])]
    if d.empty:
        return None
    plt, sns = _plt()
    n_cp = changes.groupby("benchmark").size() if not changes.empty else pd.Series(dtype=int)
    benches = sorted(d["benchmark"].unique(), key=lambda b: (-int(n_cp.get(b, 0)), str(b)))
    benches = benches[:max_panels]
    ncols = 2 if len(benches) > 1 else 1
    nrows = int(np.ceil(len(benches) / ncols))
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(5.4 * ncols + 1.0, 2.9 * nrows + 0.6))
    order = d.sort_values("date").drop_duplicates("commit")["commit"].tolist()
    pos = {c: i for i, c in enumerate(order)}
    for k, bench in enumerate(benches):
        ax = axes[k // ncols][k % ncols]
        b = d[d["benchmark"] == bench]
        cb = changes[changes["benchmark"] == bench] if not changes.empty else changes
        cp_params = set(cb["params"]) if not cb.empty else set()
        params = sorted(b["params"].unique(), key=lambda p: (p not in cp_params, str(p)))
        pal = sns.color_palette("colorblind", max(len(params[:max_lines]), 1))
        for color, p in zip(pal, params[:max_lines]):
            s = b[b["params"] == p].assign(x=lambda t: t["commit"].map(pos)).sort_values("x")
            ax.plot(s["x"], s["value"], marker="o", ms=3, lw=1.2, color=color,
                    label=_tx(p)[:40])
            if not cb.empty:
                hits = s[s["commit"].isin(cb[cb["params"] == p]["commit"])]
                ax.scatter(hits["x"], hits["value"], s=90, facecolors="none",
                           edgecolors="red", linewidths=1.6, zorder=5)
        unit = b["unit"].dropna().iloc[0] if "unit" in b and b["unit"].notna().any() else ""
        ax.set_title(_tx(bench)[:70], fontsize=9)
        ax.set_ylabel(_tx(unit))
        ax.set_xlabel("commit (oldest to newest)")
        ticks = sorted(set(b["commit"].map(pos)))
        if len(ticks) <= 12:
            ax.set_xticks(ticks)
            ax.set_xticklabels([_tx(str(order[t])[:7]) for t in ticks], rotation=45,
                               fontsize=7, ha="right")
        ax.legend(fontsize=7, frameon=False)
    for k in range(len(benches), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.suptitle("History across commits (red rings: change points)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path
