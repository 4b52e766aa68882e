"""Plain-text tables for the terminal, drawn by rich: aligned columns, no colour and no
box characters when the output is a pipe or a file, so they stay greppable."""
from __future__ import annotations

import io
import sys

__all__ = ["print_table"]


def print_table(header, rows, *, right=(), stream=None) -> None:
    """Print `rows` (sequences of strings) under `header`; columns named in `right` are
    right-aligned. Long cells are never cut: a table is for reading every value."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    stream = stream or sys.stdout
    tty = stream.isatty()
    table = Table(box=box.SIMPLE_HEAD if tty else None, show_edge=False, pad_edge=False,
                  header_style="bold" if tty else "")
    for name in header:
        table.add_column(name, justify="right" if name in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if tty:
        Console(file=stream, highlight=False).print(table)
        return
    buf = io.StringIO()
    Console(file=buf, width=10_000, no_color=True, highlight=False).print(table)
    stream.write("".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines()))
