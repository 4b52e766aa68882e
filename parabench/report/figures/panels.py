"""Panels of metrics against depth: one panel per (row, col) value, a colour per family,
a line style per mode (`grid`), written as one PNG.

Speed matters (a paper-sized report must render in seconds on two cores): figures are
laid out with fixed margins in inches instead of tight_layout/bbox_inches="tight", each of
which costs a full extra draw, and log-axis labels avoid mathtext.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .style import DPI, colors_for, depth_axis, levels, log_y, mpl_modules, rc, tx, wrapped

__all__ = ["Metric", "grid"]

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
    rows = levels(data["_row"])
    cols = levels(data["_col"])
    mpl, plt, sns = mpl_modules()
    colors = colors_for(list(data["_hue"].unique()), sns)
    styles = {v: STYLES[i % len(STYLES)] for i, v in enumerate(levels(data["_style"]))} \
        if style else {"": "-"}
    # one pass over the data: panels then only look their lines up
    # several runs of one setup give several points per depth: draw their median
    lines = {k: g.groupby("_x", as_index=False).agg(
                 _y=("_y", "median"), _lo=("_lo", "min"), _hi=("_hi", "max"))
             for k, g in data.groupby(["_row", "_col", "_hue", "_style"], sort=False)}
    row_y = {r: g["_y"].to_numpy() for r, g in data.groupby("_row", sort=False)}
    nr, nc = len(rows), len(cols)
    w = LEFT + nc * PANEL_W + (nc - 1) * WGAP + RIGHT
    title_lines = textwrap.wrap(tx(title, 200), int((w - LEFT) * 10.5)) or [""]
    top = TOP + 0.2 * (len(title_lines) - 1)
    h = top + nr * PANEL_H + (nr - 1) * HGAP + BOTTOM
    with mpl.rc_context(rc()):
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
                ax.set_title(tx(" · ".join(parts), 50), fontsize=9)
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
                    log_y(ax, list(row_y[r]) + ([hline] if hline else []))
                if x == "depth":
                    depth_axis(ax, data["_x"], logx)
                if i == nr - 1:
                    ax.set_xlabel(tx(xlabel))
                if j == 0:
                    ax.set_ylabel(tx(textwrap.fill(m.label, 26)), fontsize=9)
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
    fig.legend(hs, [wrapped(k, 20) for k in colors], loc="upper left",
               bbox_to_anchor=(x0, 1 - top / h), frameon=False, title=tx(hue), fontsize=8)
    if styles:
        ss = [Line2D([], [], color="0.3", ls=v, lw=1.5) for v in styles.values()]
        fig.legend(ss, [wrapped(k, 20) for k in styles], loc="lower left",
                   bbox_to_anchor=(x0, BOTTOM / h), frameon=False, title=tx(style),
                   fontsize=8)
