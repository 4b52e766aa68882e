"""What every section reads (`Context`, loaded once by `build`) and the helpers they share.

A section whose data is absent still appears, saying what is missing and the command
that produces it (`HOW`), so a reader of a CPU-only report learns how to get the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ... import analysis
from ...config import FAMILIES
from ...errors import UsageError
from ...measure.load import load_columns
from ..content import Figure, fmt

__all__ = ["CRITICAL_PATH_NOTE", "ERRBAR", "HOW", "SETUP_KEYS", "Context", "critical_path",
           "family_sorted", "short", "slope_text", "varying"]

#: Commands that produce each kind of data; one place to keep them right.
HOW = {
    "run": "python -m parabench run --preset quick",
    "gpu": "python -m parabench run --preset paper   # on a CUDA machine",
    "profile": "python -m parabench run --profile   # or: python -m parabench profile",
    "energy": "python -m parabench run --preset paper   # on a CUDA machine with NVML "
              "(nvidia-ml-py)",
    "asv": "asv run && python -m parabench report --asv-results .asv/results",
    "compare": "python -m parabench compare BASELINE CONTENDER",
}

SETUP_KEYS = ("device", "dtype", "workload", "width")
ERRBAR = "Error bars: p10–p90 of the raw samples of each point."
CRITICAL_PATH_NOTE = (
    "Depth is the number of layers (blocks); the critical path is how many of them one "
    "input passes through in sequence. Para-Former at depth d is d branches of one block: "
    "d layers, a critical path of 1 block (branch_depth), whatever d is; a serial model's "
    "critical path is all d. That is where any advantage must come from, and why a CLS "
    "head lets Para-Former skip most of every branch's last (and only) block, which a "
    "serial ViT can do in its last block alone.")


def critical_path(family: str, depth) -> str:
    """'1 of 12 blocks': the critical path beside the layer count, '–' where it is moot."""
    from ...catalog import depth_meaning

    try:
        m = depth_meaning(str(family), int(depth))
    except (TypeError, ValueError, UsageError):  # UsageError: a family no longer registered
        return "–"
    return "–" if m is None else f"{m['critical_path']} of {m['layers']} blocks"


@dataclass
class Context:
    """Everything a section may need, loaded once by `build`."""

    records: pd.DataFrame  # every record of the selected runs, any status
    runs: list[dict]  # rows of the runs table
    figdir: Path
    out: Path
    comparison: dict | None = None  # Store.latest_comparison(): the last `compare` saved
    asv_results: Path | None = None
    db: Path | None = None
    ok: pd.DataFrame = field(init=False)
    fits: pd.DataFrame = field(init=False)
    ratios: pd.DataFrame = field(init=False)

    def __post_init__(self):
        if "width" in self.records:  # the one nullable key column; NaN keys break lookups
            self.records = self.records.assign(width=self.records["width"].fillna("-"))
        self.records = load_columns(analysis.split_machines(self.records))
        self.ok = analysis.with_derived(analysis.ok_records(self.records))
        self.fits = family_sorted(analysis.depth_fits(self.records))
        self.ratios = analysis.parallel_over_serial(self.records)

    def setups(self):
        """(label, stem, frame) per device/dtype/workload/width combination of ok rows."""
        if self.ok.empty:
            return []
        out = []
        groups = list(self.ok.groupby(list(SETUP_KEYS), sort=True, dropna=False))
        for i, (keys, g) in enumerate(groups):
            label = " · ".join(f"{k} {v}" for k, v in zip(SETUP_KEYS, keys, strict=True))
            out.append((label, f"s{i}", g))
        return out

    def figure(self, path: Path | None, caption: str) -> Figure | None:
        if path is None:
            return None
        return Figure(path, path.relative_to(self.out).as_posix(), caption)


def family_sorted(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in the order of `config.FAMILIES` (unknown families last), then mode, batch."""
    if df.empty or "family" not in df:
        return df
    rank = {f: i for i, f in enumerate(FAMILIES)}
    key = df["family"].map(lambda f: (rank.get(f, len(rank)), str(f)))
    return df.assign(_k=key).sort_values(["_k"] + [c for c in ("mode", "batch")
                                                   if c in df]).drop(columns="_k")


def varying(df: pd.DataFrame, keys) -> list[str]:
    """Those of `keys` that take more than one value in `df`."""
    return [k for k in keys if k in df and df[k].nunique(dropna=False) > 1]


def slope_text(b, lo, hi) -> str:
    """A depth slope with its interval: '+0.012 ms/layer [95% CI 0.01, 0.014]'."""
    if not np.isfinite(b):
        return "–"
    ci = f" [95% CI {fmt(lo)}, {fmt(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{b:+.3g} ms/layer{ci}"


def short(text: str, n: int = 240) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
