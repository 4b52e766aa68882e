"""Preparing one point for measurement, and tearing it down: the only place that does it.

The runner, the interleaved A/B worker, the asv suite and the extra passes all measure
"the same point" only if they build it the same way: seed, model from the catalog, a
seeded input, the timed step for the mode and workload, the width's class count.
`prepared()` does that and, on exit, drops every reference it made (model, input, step,
a captured CUDA graph and its memory pool) *before* freeing memory, so the next point's
peak is its own.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .device import free_memory

__all__ = ["PointUnsupported", "Prepared", "prepared"]


class PointUnsupported(Exception):
    """This device or build cannot run the point's mode/workload (a `skipped` row)."""


@dataclass
class Prepared:
    """A point ready to time: `step()` runs one forward (or train step) on `x`."""

    point: object  # config.Point
    sweep: object  # config.Sweep: device, width, image size, threads
    model: object
    x: object
    step: Callable[[], object]

    @property
    def device(self) -> str:
        return self.sweep.device


@contextmanager
def prepared(point, sweep) -> Iterator[Prepared]:
    """Build `point` as `sweep` describes it; yield a Prepared; free it all on exit.

    Raises PointUnsupported (before building anything) for a combination this device
    cannot run, UsageError for a model that cannot be built; anything else comes from
    building or capturing and is the caller's to turn into a row.
    """
    import torch

    from ..catalog import build
    from ..config import WIDTHS
    from ..workloads import make_step, unsupported
    from .timing import make_input

    reason = unsupported(point.mode, point.workload, sweep.device)
    if reason:
        raise PointUnsupported(reason)
    if sweep.threads:
        torch.set_num_threads(sweep.threads)
    dtype = getattr(torch, point.dtype)
    prep = None
    try:
        torch.manual_seed(0)
        model = build(point.family, point.depth, width=sweep.width, img_size=sweep.img_size,
                      device=sweep.device, dtype=dtype)
        x = make_input(point.batch, sweep.img_size, sweep.device, dtype)
        step = make_step(model, x, mode=point.mode, workload=point.workload,
                         num_classes=WIDTHS[sweep.width].num_classes)
        prep = Prepared(point, sweep, model, x, step)
        del model, x, step
        yield prep
    finally:
        if prep is not None:
            prep.model = prep.x = prep.step = None
        prep = None
        free_memory(sweep.device)
