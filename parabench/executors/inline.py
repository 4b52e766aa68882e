"""The `inline` executor: every point in the driver's own process, one after another.
No start-up cost and no isolation: a segfault ends the run (finished points stay stored)."""
from __future__ import annotations

from ..measure.device import settle_heap
from .common import PassSpec, measure_here

__all__ = ["InlineExecutor"]


class InlineExecutor:
    name = "inline"

    def __init__(self, passes: PassSpec | None = None, *, built=None):
        self.spec = passes or PassSpec()
        # pass functions given ready-made (library callers, `profile`); none without a spec
        self._built = built if built is not None or passes is not None else []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def run(self, points, sweep, *, run_id: str, store=None, started=lambda p: None):
        passes = self._built if self._built is not None else self.spec.build(sweep, store)
        settle_heap()  # freeze in the process that measures, and only there (see device.py)
        for point in points:
            started(point)
            yield measure_here(point, sweep, spec=self.spec, passes=passes, run_id=run_id,
                               store=store)
