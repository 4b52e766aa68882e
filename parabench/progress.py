"""Progress of a sweep: a live bar on a terminal, one plain line per point elsewhere.

rich draws the bar (elapsed, ETA, the point being measured, the last result); when the
output is not a terminal (CI logs, a pipe) every finished point is one line with the
same information, so logs stay readable and greppable.
"""
from __future__ import annotations

import sys
import time

__all__ = ["SweepProgress"]


def _hms(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _outcome(rec) -> str:
    s = rec.stats
    if s is None:
        return f"{rec.status}: {rec.reason}"
    unit = getattr(rec, "unit", "ms")
    return f"{s.median:.3f} ms" if unit == "ms" else f"{s.median:,.0f} {unit}"


class SweepProgress:
    """`with SweepProgress(total, done) as bar: bar.start(point); ...; bar.finished(rec)`.

    `done` counts points already stored (a resumed run starts part-way); the ETA is
    extrapolated from the points measured in this process only.
    """

    def __init__(self, total: int, done: int = 0, *, enabled: bool = True, stream=None):
        self.total, self.done, self.enabled = total, done, enabled
        self.stream = stream or sys.stderr
        self.measured = 0
        self.started = time.monotonic()
        self._live = None
        self._task = None

    def __enter__(self):
        if self.enabled and self.stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._live = Progress(
                BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), TextColumn("{task.description}"),
                console=Console(file=self.stream), transient=False,
            )
            self._live.start()
            self._task = self._live.add_task("", total=self.total, completed=self.done)
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.stop()
        return False

    def start(self, point) -> None:
        if self._live is not None:
            self._live.update(self._task, description=f"measuring {point.key}")

    def finished(self, rec) -> None:
        self.done += 1
        self.measured += 1
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._task, advance=1,
                              description=f"last: {rec.key}  {_outcome(rec)}"[:160])
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.measured * (self.total - self.done)
        line = f"[{self.done}/{self.total}] ETA {_hms(eta)}  {rec.key}  {_outcome(rec)}"
        self.stream.write(line[:200] + "\n")
        self.stream.flush()
