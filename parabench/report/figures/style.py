"""What every figure shares: seaborn's style over matplotlib's Agg backend, stable
family colours, and axis labelling that avoids mathtext (slow, and '$' in user data
would start it)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from ...config import FAMILIES

__all__ = ["DPI", "colors_for", "depth_axis", "levels", "log_y", "mpl_modules", "rc", "tx"]

DPI = 96


@lru_cache(maxsize=1)
def rc() -> dict:
    import seaborn as sns

    return {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.05)}


def mpl_modules():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    return matplotlib, plt, sns


def tx(value, n: int | None = None) -> str:
    """Text for matplotlib: a '$' in user data would otherwise start mathtext."""
    text = str(value)
    if n and len(text) > n:
        text = text[: n - 1] + "…"
    return text.replace("$", r"\$")


def wrapped(value, width: int = 24) -> str:
    """Legend text that never loses a character: long labels wrap onto more lines
    (truncating made "...batch=1" and "...batch=8" print alike)."""
    import textwrap

    text = "\n".join(textwrap.wrap(str(value), width, break_on_hyphens=False)) or str(value)
    return tx(text)


def distinct_labels(labels) -> dict:
    """label -> the part that tells it apart: for "k=v, k=v" parameter strings, only the
    keys whose values differ among `labels` (all of them when none differ)."""
    labels = list(dict.fromkeys(str(x) for x in labels))
    parts = {x: [p.strip() for p in x.split(",")] for x in labels}
    if len(labels) < 2 or len({len(v) for v in parts.values()}) != 1:
        return {x: x for x in labels}
    varying = [i for i in range(len(parts[labels[0]]))
               if len({v[i] for v in parts.values()}) > 1]
    if not varying:
        return {x: x for x in labels}
    return {x: ", ".join(parts[x][i] for i in varying) for x in labels}


def colors_for(values, sns) -> dict:
    """Stable colours: a family keeps its colour in every figure of the report."""
    values = list(dict.fromkeys(values))
    if any(lvl in FAMILIES for lvl in values):
        base = list(FAMILIES) + sorted((v for v in values if v not in FAMILIES), key=str)
    else:
        try:
            base = sorted(values)
        except TypeError:
            base = sorted(values, key=str)
    pal = sns.color_palette("colorblind", max(len(base), 1))
    return {lvl: pal[i % len(pal)] for i, lvl in enumerate(base) if lvl in values}


def levels(values) -> list:
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


def log_y(ax, values) -> None:
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


def depth_axis(ax, depths, log: bool) -> None:
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
