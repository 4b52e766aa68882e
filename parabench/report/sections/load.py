"""How loaded the machine was while the figures were measured (parabench.measure.load).

A figure taken beside other heavy work (others using over half a core meanwhile) is not
the machine's figure: on the 2-core project machine fused/loop read 0.53 under load and
1.20 on a quiet machine (issue 24). Such figures are marked with BUSY_MARK wherever a
table shows them, and every report says the load range its figures came from.
"""
from __future__ import annotations

import pandas as pd

from ...measure.load import BUSY_MARGIN, shown_cpu_s
from ..content import Table, fmt

__all__ = ["BUSY_MARK", "BUSY_NOTE", "is_busy", "load_bullets", "load_table"]

BUSY_MARK = "†"
BUSY_NOTE = (f"{BUSY_MARK}: measured while other heavy work ran (other processes kept more "
             f"than {BUSY_MARGIN} of a core busy during it; where that was not recorded, a "
             f"1-minute load above the measured threads + {BUSY_MARGIN}); not this "
             "machine's figure.")


def is_busy(v) -> bool:
    return v is True or (isinstance(v, (int, float)) and not pd.isna(v) and bool(v))


def load_bullets(ok: pd.DataFrame) -> list[str]:
    """One or two sentences: the load range of the figures, and how many were busy."""
    if ok.empty or "load_1m" not in ok:
        return []
    loads = pd.to_numeric(ok["load_1m"], errors="coerce").dropna()
    if loads.empty:
        return [f"None of these {len(ok)} points recorded the machine's load (measured "
                "before parabench recorded it): how loaded the machine was is unknown."]
    other = pd.to_numeric(ok["other_cpu_s"], errors="coerce").dropna()
    out = [f"Load during measurement: 1-minute load average {fmt(loads.min())} to "
           f"{fmt(loads.max())} over {len(loads)} of {len(ok)} points"
           + (f"; other processes used {fmt(shown_cpu_s(other.min()))} to "
              f"{fmt(shown_cpu_s(other.max()))} CPU seconds "
              "per point" if not other.empty else "") + "."]
    n = int(ok["busy"].map(is_busy).sum())
    if n:
        out.append(f"{n} of {len(ok)} points were measured on a busy machine. {BUSY_NOTE}")
    return out


def load_table(records: pd.DataFrame) -> Table | None:
    """Per run: points, load range, other processes' CPU seconds, busy points."""
    if records.empty or "load_1m" not in records or "run_id" not in records:
        return None
    rows = []
    for run, g in records.groupby("run_id", sort=True):
        loads = pd.to_numeric(g["load_1m"], errors="coerce").dropna()
        other = pd.to_numeric(g["other_cpu_s"], errors="coerce").dropna()
        rows.append([str(run), str(len(g)),
                     f"{fmt(loads.min())}–{fmt(loads.max())}" if len(loads) else "–",
                     fmt(shown_cpu_s(other.sum())) if len(other) else "–",
                     str(int(g["busy"].map(is_busy).sum()))])
    return Table("Load during measurement (per run)", ["run", "points", "1-minute load",
                 "other processes' CPU s (sum)", f"busy points ({BUSY_MARK})"], rows,
                 BUSY_NOTE)
