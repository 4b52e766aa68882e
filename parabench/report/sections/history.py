"""Values across commits with their change points, from `parabench.regress.history`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..content import Missing, Section, table_from_frame
from ..figures import history_figure
from .context import HOW, Context

__all__ = ["history_section"]


def history_section(ctx: Context) -> Section:
    """asv results across commits; failing those, the store's own runs when it holds
    several. A broken results folder or a failing detector never sinks the report."""
    s = Section("history", "History across commits")
    try:  # here, not at the top: the rest of the report works without it
        from ...regress.history import (
            detect_change_points,
            load_asv_history,
            load_store_history,
        )
    except ImportError:
        s.missing.append(Missing("parabench.regress.history is not available in this "
                                 "install", HOW["asv"]))
        return s
    hist, source, problems = None, "", []
    d = ctx.asv_results
    if d is not None and Path(d).is_dir():
        try:
            hist = load_asv_history(d)
            source = f"asv results in {d}"
        except Exception as e:  # noqa: BLE001 -- any failure becomes a note
            problems.append(f"could not read asv results in {d}: {type(e).__name__}: {e}")
        if hist is not None and hist.empty:
            problems.append(f"asv results in {d} hold no benchmark values")
            hist = None
    else:
        problems.append(f"no asv results at {d}" if d else "no asv results folder given or found")
    if hist is None and ctx.db is not None:
        try:
            store_hist = load_store_history(ctx.db)
        except Exception:  # noqa: BLE001
            store_hist = None
        runs = "run_id" if store_hist is not None and "run_id" in store_hist else "commit"
        if store_hist is not None and not store_hist.empty and store_hist[runs].nunique() > 1:
            hist, source = store_hist, f"the runs stored in {ctx.db} (no asv results)"
    if hist is None:
        for p in problems:
            s.missing.append(Missing(p, HOW["asv"]))
        return s
    order, off = hist.attrs.get("order"), hist.attrs.get("off_line", 0)
    if off:
        s.bullets.append(f"{off} commit(s) with asv results are not on the {order} and are "
                         "left out (a side branch, `asv continuous` on a pull request).")
    hist = _with_series(hist)
    try:
        changes = _with_series(detect_change_points(hist))
    except Exception as e:  # noqa: BLE001
        changes = hist.iloc[0:0]
        s.bullets.append(f"Change-point detection failed: {type(e).__name__}: {e}")
    s.paragraphs.append(
        f"{hist['benchmark'].nunique()} benchmark(s) over {hist['commit'].nunique()} "
        f"commit(s) from {source}, in {order or 'the order they ran'}; {len(changes)} "
        "step(s) found by asv's own step detection (asv.step_detect).")
    fig = ctx.figure(history_figure(hist, changes, ctx.figdir / "history.png"),
                     "Values per commit, oldest to newest in git order; red rings mark the "
                     "first commit of a new level, the shaded band the commit range of the "
                     "step (the benchmarks with the most steps are shown).")
    if fig:
        s.figures.append(fig)
    if not changes.empty:
        s.tables.append(table_from_frame(
            changes.sort_values("date"), "Change points",
            {"benchmark": "benchmark", "series": "parameters",
             "previous_commit": "last at old level", "commit": "first at new level",
             "date": "date", "before": "before", "after": "after", "ratio": "after / before"},
            {"commit": lambda c: str(c)[:10], "previous_commit": lambda c: str(c)[:10],
             "date": lambda t: str(t)[:19],
             "ratio": lambda v: "–" if pd.isna(v) else f"{v:.2f}×"}))
    return s


def _with_series(df: pd.DataFrame) -> pd.DataFrame:
    """A `series` label per line: the parameters, plus the machine when there are several."""
    if df is None or df.empty or "params" not in df:
        return df if df is not None else pd.DataFrame()
    label = df["params"].astype(str)
    if "machine" in df and df["machine"].nunique(dropna=True) > 1:
        label = label + " @ " + df["machine"].astype(str)
    return df.assign(series=label)
