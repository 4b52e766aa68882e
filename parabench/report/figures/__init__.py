"""Figures for the report, PNGs: `grid` draws metrics against depth in panels
(`panels`), `history_figure` values per commit (`history`); `style` holds what they share.

Every function takes a tidy DataFrame and a target path and returns the path it wrote,
or None when there was nothing to draw: the caller turns None into a "missing data"
note, so the report never shows an empty plot. matplotlib and seaborn are imported
inside the functions (together they cost about a second to import).
"""
from .history import history_figure
from .panels import Metric, grid

__all__ = ["Metric", "grid", "history_figure"]
