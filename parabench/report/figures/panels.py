"""Figures for the report: seaborn's style and palette over matplotlib's Agg backend, PNGs.

Every function takes a tidy DataFrame and a target path and returns the path it wrote,
or None when there was nothing to draw: the caller turns None into a "missing data"
note, so the report never shows an empty plot. matplotlib and seaborn are imported
inside the functions (together they cost about a second to import).

Speed matters (a paper-sized report must render in seconds on two cores): figures are
laid out with fixed margins in inches instead of tight_layout/bbox_inches="tight", each of
which costs a full extra draw, and log-axis labels avoid mathtext.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import FAMILIES

__all__ = ["Metric", "grid", "history_figure"]

DPI = 96
PANEL_W, PANEL_H = 3.3, 2.3  # inches
LEFT, RIGHT, TOP, BOTTOM = 1.05, 1.85, 0.85, 0.6  # margins, inches
WGAP, HGAP = 0.3, 0.5
STYLES = ["-", "--", ":", "-."]


@dataclass(frozen=True)
class Metric:
    """One quantity to plot against depth; `lo`/`hi` name error-bar columns."""

    col: str
    label: str
    logy: bool = False
    percent: bool = False
    lo: str | None = None
    hi: str | None = None


@lru_cache(maxsize=1)
def _rc() -> dict:
    import seaborn as sns

    return {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.05)}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    return matplotlib, plt, sns


def _tx(value, n: int | None = None) -> str:
    """Text for matplotlib: a '$' in user data would otherwise start mathtext."""
    text = str(value)
    if n and len(text) > n:
        text = text[: n - 1] + "…"
    return text.replace("$", r"\$")


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


def _levels(values) -> list:
    vals = list(pd.unique(values))
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _plain(v, _pos=None) -> str:
    """Tick label without mathtext (10^k labels go through a slow TeX-like parser)."""
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _log_y(ax, values) -> None:
    """Log y axis with plain labels. Across a decade or more: 1-2-5 ticks; over a
    narrower range those would leave one label or none, so use evenly spaced ones."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    ax.set_yscale("log")
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    span = v.max() / v.min() if v.size else 1.0
    if span < 8:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    else:
        subs = (1.0, 2.0, 5.0) if span < 300 else (1.0,)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _depth_axis(ax, depths, log: bool) -> None:
    """Depth ticks: powers of two on a log axis (the measured depths 12, 24, 48 fall
    between them), round integers on a linear one."""
    from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, ScalarFormatter

    if log:
        ax.set_xscale("log", base=2)
        lo, hi = float(np.min(depths)), float(np.max(depths))
        ticks = [2**k for k in range(int(np.floor(np.log2(lo))), int(np.ceil(np.log2(hi))) + 1)]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=7, integer=True))
    ax.xaxis.set_major_formatter(ScalarFormatter())


def _finite(df: pd.DataFrame, m: Metric) -> pd.DataFrame:
    if m.col not in df:
        return df.iloc[0:0]
    y = pd.to_numeric(df[m.col], errors="coerce")
    keep = np.isfinite(y) & ((y > 0) if m.logy else True)
    return df[keep]


def grid(
    df: pd.DataFrame,
    path: Path,
    metrics: list[Metric],
    *,
    title: str,
    row: str = "batch",
    col: str | None = "mode",
    hue: str = "family",
    style: str | None = None,
    x: str = "depth",
    xlabel: str = "depth (layers; Para-Former: branches)",
    logx: bool = False,
    hline: float | None = None,
) -> Path | None:
    """Lines of each metric against `x`: one panel per (row, col) value, one colour per
    `hue` value, one line style per `style` value. `row="metric"` gives each metric its
    own row; otherwise the first metric is drawn. Metrics without a finite value are
    dropped; returns None, writing nothing, when none is left."""
    metrics = [m for m in metrics if not _finite(df, m).empty]
    if not metrics:
        return None
    if row != "metric":
        metrics = metrics[:1]
    data = _tidy(df, metrics, row=row, col=col, hue=hue, style=style, x=x)
    rows = _levels(data["_row"])
    cols = _levels(data["_col"])
    mpl, plt, sns = _plt()
    colors = _colors(list(data["_hue"].unique()), sns)
    styles = {v: STYLES[i % len(STYLES)] for i, v in enumerate(_levels(data["_style"]))} \
        if style else {"": "-"}
    # one pass over the data: panels then only look their lines up
    # several runs of one setup give several points per depth: draw their median
    lines = {k: g.groupby("_x", as_index=False).agg(
                 _y=("_y", "median"), _lo=("_lo", "min"), _hi=("_hi", "max"))
             for k, g in data.groupby(["_row", "_col", "_hue", "_style"], sort=False)}
    row_y = {r: g["_y"].to_numpy() for r, g in data.groupby("_row", sort=False)}
    nr, nc = len(rows), len(cols)
    w = LEFT + nc * PANEL_W + (nc - 1) * WGAP + RIGHT
    title_lines = textwrap.wrap(_tx(title, 200), int((w - LEFT) * 10.5)) or [""]
    top = TOP + 0.2 * (len(title_lines) - 1)
    h = top + nr * PANEL_H + (nr - 1) * HGAP + BOTTOM
    with mpl.rc_context(_rc()):
        fig, axes = plt.subplots(nr, nc, squeeze=False, sharex=True, sharey="row",
                                 figsize=(w, h))
        fig.subplots_adjust(left=LEFT / w, right=1 - RIGHT / w, top=1 - top / h,
                            bottom=BOTTOM / h, wspace=WGAP / PANEL_W, hspace=HGAP / PANEL_H)
        for i, r in enumerate(rows):
            m = metrics[r] if row == "metric" else metrics[0]
            for j, c in enumerate(cols):
                ax = axes[i][j]
                parts = [] if row == "metric" else [f"{row} {r}"]
                parts += [f"{col} {c}"] if col else []
                ax.set_title(_tx(" · ".join(parts), 50), fontsize=9)
                drawn = 0
                for hv, color in colors.items():
                    for sv, ls in styles.items():
                        g = lines.get((r, c, hv, sv))
                        if g is not None:
                            _line(ax, g, color, ls)
                            drawn += 1
                if not drawn:
                    ax.text(0.5, 0.5, "not measured", ha="center", va="center",
                            transform=ax.transAxes, color="0.5")
                if hline is not None:
                    ax.axhline(hline, color="0.3", lw=0.9, ls="--")
                if m.logy:
                    _log_y(ax, list(row_y[r]) + ([hline] if hline else []))
                if x == "depth":
                    _depth_axis(ax, data["_x"], logx)
                if i == nr - 1:
                    ax.set_xlabel(_tx(xlabel))
                if j == 0:
                    ax.set_ylabel(_tx(textwrap.fill(m.label, 26)), fontsize=9)
        fig.suptitle("\n".join(title_lines), fontsize=11, x=LEFT / w, ha="left",
                     va="top", y=1 - 0.12 / h)
        _legends(fig, plt, colors, styles if style else {}, hue, style, w, h, top)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, pil_kwargs={"compress_level": 3})
        plt.close(fig)
    return path


def _tidy(df, metrics, *, row, col, hue, style, x) -> pd.DataFrame:
    """Long frame with plain-object keys (_row, _col, _hue, _style) and float columns
    (_x, _y, _lo, _hi; percentages already scaled), one block per metric."""
    parts = []
    for i, m in enumerate(metrics):
        f = _finite(df, m)
        n = len(f)
        scale = 100.0 if m.percent else 1.0

        def num(c, f=f, n=n, scale=scale):
            if c and c in f:
                return pd.to_numeric(f[c], errors="coerce").to_numpy(float) * scale
            return np.full(n, np.nan)

        def key(c, f=f, n=n):
            return f[c].to_numpy(object) if c else np.full(n, "", dtype=object)

        parts.append(pd.DataFrame({
            "_row": np.full(n, i, dtype=object) if row == "metric" else key(row),
            "_col": key(col), "_hue": key(hue), "_style": key(style),
            "_x": pd.to_numeric(f[x], errors="coerce").to_numpy(float),
            "_y": num(m.col), "_lo": num(m.lo), "_hi": num(m.hi),
        }))
    return pd.concat(parts, ignore_index=True)


def _line(ax, g: pd.DataFrame, color, ls: str) -> None:
    x, y = g["_x"].to_numpy(), g["_y"].to_numpy()
    lo, hi = g["_lo"].to_numpy(), g["_hi"].to_numpy()
    if np.isfinite(lo).any() or np.isfinite(hi).any():
        lo, hi = np.where(np.isfinite(lo), lo, y), np.where(np.isfinite(hi), hi, y)
        yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
        ax.errorbar(x, y, yerr=yerr, marker="o", ms=3.2, lw=1.3, capsize=2, elinewidth=0.8,
                    color=color, ls=ls)
    else:
        ax.plot(x, y, marker="o", ms=3.2, lw=1.3, color=color, ls=ls)


def _legends(fig, plt, colors, styles, hue, style, w, h, top) -> None:
    from matplotlib.lines import Line2D

    x0 = 1 - (RIGHT - 0.15) / w
    hs = [Line2D([], [], color=c, marker="o", ms=4, lw=1.5) for c in colors.values()]
    fig.legend(hs, [_tx(k, 20) for k in colors], loc="upper left",
               bbox_to_anchor=(x0, 1 - top / h), frameon=False, title=_tx(hue), fontsize=8)
    if styles:
        ss = [Line2D([], [], color="0.3", ls=v, lw=1.5) for v in styles.values()]
        fig.legend(ss, [_tx(k, 20) for k in styles], loc="lower left",
                   bbox_to_anchor=(x0, BOTTOM / h), frameon=False, title=_tx(style),
                   fontsize=8)


def history_figure(hist: pd.DataFrame, changes: pd.DataFrame, path: Path, *,
                   max_panels: int = 6, max_lines: int = 6) -> Path | None:
    """Value per commit (oldest to newest) for the benchmarks with the most change
    points, one panel per benchmark, change points ringed in red. Series with change
    points are drawn first; at most `max_lines` per panel."""
    d = hist.copy()
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d = d[np.isfinite(d["value"])]
    if d.empty:
        return None
    mpl, plt, sns = _plt()
    n_cp = changes.groupby("benchmark").size() if not changes.empty else pd.Series(dtype=int)
    benches = sorted(d["benchmark"].unique(), key=lambda b: (-int(n_cp.get(b, 0)), str(b)))
    benches = benches[:max_panels]
    nc = 2 if len(benches) > 1 else 1
    nr = int(np.ceil(len(benches) / nc))
    pw, ph, left, right, top, bottom, wgap, hgap = 4.6, 2.4, 0.9, 0.3, 0.7, 0.9, 0.8, 1.1
    w = left + nc * pw + (nc - 1) * wgap + right
    h = top + nr * ph + (nr - 1) * hgap + bottom
    order = d.sort_values("date").drop_duplicates("commit")["commit"].tolist()
    pos = {c: i for i, c in enumerate(order)}
    with mpl.rc_context(_rc()):
        fig, axes = plt.subplots(nr, nc, squeeze=False, figsize=(w, h))
        fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h,
                            bottom=bottom / h, wspace=wgap / pw, hspace=hgap / ph)
        for k, bench in enumerate(benches):
            ax = axes[k // nc][k % nc]
            b = d[d["benchmark"] == bench]
            cb = changes[changes["benchmark"] == bench] if not changes.empty else changes
            cp_params = set(cb["params"]) if not cb.empty else set()
            params = sorted(b["params"].unique(), key=lambda p: (p not in cp_params, str(p)))
            pal = sns.color_palette("colorblind", max(len(params[:max_lines]), 1))
            for color, p in zip(pal, params[:max_lines], strict=False):
                s = b[b["params"] == p].assign(x=lambda t: t["commit"].map(pos))
                s = s.sort_values("x")
                ax.plot(s["x"], s["value"], marker="o", ms=3, lw=1.2, color=color,
                        label=_tx(p, 40))
                if not cb.empty:
                    hits = s[s["commit"].isin(cb[cb["params"] == p]["commit"])]
                    ax.scatter(hits["x"], hits["value"], s=90, facecolors="none",
                               edgecolors="red", linewidths=1.6, zorder=5)
            units = b["unit"].dropna() if "unit" in b else pd.Series(dtype=str)
            ax.set_title(_tx(bench, 60), fontsize=9)
            ax.set_ylabel(_tx(units.iloc[0] if len(units) else "value"))
            ticks = sorted(set(b["commit"].map(pos)))
            if len(ticks) > 12:
                ticks = ticks[:: int(np.ceil(len(ticks) / 12))]
            ax.set_xticks(ticks)
            ax.set_xticklabels([_tx(str(order[t])[:7]) for t in ticks], rotation=45,
                               fontsize=7, ha="right")
            ax.legend(fontsize=7, frameon=False)
        for k in range(len(benches), nr * nc):
            axes[k // nc][k % nc].set_visible(False)
        fig.suptitle("History across commits, oldest to newest (red rings: change points)",
                     fontsize=11, x=left / w, ha="left", y=1 - 0.2 / h)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
    return path
