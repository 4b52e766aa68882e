"""The report's content model: plain-text sections that the HTML and Markdown writers
both render. Nothing here is markup, so escaping happens in exactly one place per format.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Figure", "Missing", "Section", "Table", "fmt", "table_from_frame"]

MAX_TABLE_ROWS = 200


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""  # e.g. "300 more rows in data.csv"


@dataclass
class Figure:
    path: Path  # absolute path of the PNG on disk
    rel: str  # path relative to the report folder, for Markdown links
    caption: str


@dataclass
class Missing:
    what: str  # what is missing, in one sentence
    how: str = ""  # a command that produces it


@dataclass
class Section:
    id: str
    title: str
    lead: list[str] = field(default_factory=list)  # the answer, shown first and prominent
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # method notes, shown last and small
    links: list[tuple[str, str]] = field(default_factory=list)  # (relative path, text)

    @property
    def empty(self) -> bool:
        """True when the section has nothing but missing-data notes."""
        return not (self.lead or self.paragraphs or self.bullets or self.figures
                    or self.tables or self.links)


def fmt(v, digits: int = 3) -> str:
    """A cell as text: numbers to `digits` significant figures, gaps as an en dash."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iu"):
        return str(int(v))
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        f = float(v)
        if math.isnan(f):
            return "–"
        if math.isinf(f):
            return "∞" if f > 0 else "-∞"
        if f != 0 and (abs(f) >= 10**7 or abs(f) < 10 ** -(digits + 1)):
            return f"{f:.{digits - 1}e}"
        if float(f).is_integer() and abs(f) < 10**7:
            return str(int(f))
        return f"{f:.{digits}g}" if abs(f) < 10**digits else f"{f:.0f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x, digits) for x in v)
    try:
        import pandas as pd

        if pd.isna(v):
            return "–"
    except (TypeError, ValueError):
        pass
    return str(v)


def table_from_frame(df, caption: str, columns: dict[str, str] | None = None,
                     formats: dict | None = None, max_rows: int = MAX_TABLE_ROWS) -> Table:
    """A Table from a DataFrame. `columns` maps column -> header (and selects/orders);
    `formats` maps column -> callable(value) -> str, overriding `fmt`."""
    columns = columns or {c: c for c in df.columns}
    formats = formats or {}
    rows = []
    for rec in df.head(max_rows).to_dict("records"):
        rows.append([formats.get(c, fmt)(rec.get(c)) for c in columns])
    note = ""
    if len(df) > max_rows:
        note = f"{len(df) - max_rows} more rows not shown; all of them are in the CSV files."
    return Table(caption, list(columns.values()), rows, note)
