"""Values per commit, in commit order, with steps marked: the history section's figure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .style import DPI, distinct_labels, mpl_modules, rc, tx, wrapped

__all__ = ["history_figure"]


def history_figure(hist: pd.DataFrame, changes: pd.DataFrame, path: Path, *,
                   max_panels: int = 6, max_lines: int = 6) -> Path | None:
    """Value per commit for the benchmarks with the most change points, one panel per
    benchmark. Commits run oldest to newest in the history's `order` (the first-parent
    line, from git), never by date. Each step is a red ring on the first commit of the
    new level and a shaded band from the last commit of the old one (the range the
    detector gives). Series with steps are drawn first; at most `max_lines` per panel;
    legends name only the parameters that differ, in full."""
    d = hist.copy()
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d = d[np.isfinite(d["value"])]
    if d.empty:
        return None
    mpl, plt, sns = mpl_modules()
    n_cp = changes.groupby("benchmark").size() if not changes.empty else pd.Series(dtype=int)
    benches = sorted(d["benchmark"].unique(), key=lambda b: (-int(n_cp.get(b, 0)), str(b)))
    benches = benches[:max_panels]
    nc = 2 if len(benches) > 1 else 1
    nr = int(np.ceil(len(benches) / nc))
    pw, ph, left, right, top, bottom, wgap, hgap = 4.6, 2.4, 0.9, 0.3, 0.7, 0.9, 0.8, 1.1
    w = left + nc * pw + (nc - 1) * wgap + right
    h = top + nr * ph + (nr - 1) * hgap + bottom
    key = "order" if "order" in d else "date"  # a frame without order: old callers
    order = d.sort_values(key, kind="stable").drop_duplicates("commit")["commit"].tolist()
    pos = {c: i for i, c in enumerate(order)}
    with mpl.rc_context(rc()):
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
            names = distinct_labels(params[:max_lines])
            for color, p in zip(pal, params[:max_lines], strict=False):
                s = b[b["params"] == p].assign(x=lambda t: t["commit"].map(pos))
                s = s.sort_values("x")
                ax.plot(s["x"], s["value"], marker="o", ms=3, lw=1.2, color=color,
                        label=wrapped(names[str(p)], 30))
                if not cb.empty:
                    steps = cb[cb["params"] == p]
                    hits = s[s["commit"].isin(steps["commit"])]
                    ax.scatter(hits["x"], hits["value"], s=90, facecolors="none",
                               edgecolors="red", linewidths=1.6, zorder=5)
                    if "previous_commit" in steps:
                        for prev, first in zip(steps["previous_commit"], steps["commit"],
                                               strict=True):
                            if prev in pos and first in pos:
                                ax.axvspan(pos[prev], pos[first], color="red", alpha=0.08,
                                           lw=0)
            units = b["unit"].dropna() if "unit" in b else pd.Series(dtype=str)
            ax.set_title(tx(bench, 60), fontsize=9)
            ax.set_ylabel(tx(units.iloc[0] if len(units) else "value"))
            ticks = sorted(set(b["commit"].map(pos)))
            if len(ticks) > 12:
                ticks = ticks[:: int(np.ceil(len(ticks) / 12))]
            ax.set_xticks(ticks)
            ax.set_xticklabels([tx(str(order[t])[:7]) for t in ticks], rotation=45,
                               fontsize=7, ha="right")
            ax.legend(fontsize=7, frameon=False)
        for k in range(len(benches), nr * nc):
            axes[k // nc][k % nc].set_visible(False)
        fig.suptitle("History in git order, oldest to newest (red: steps)",
                     fontsize=11, x=left / w, ha="left", y=1 - 0.2 / h)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
    return path
