"""Preparing one point for measurement, and tearing it down: the only place that does it.

The runner, the interleaved A/B worker, the asv suite and the extra passes all measure
"the same point" only if they build it the same way: seed, model from the catalog, a
seeded input, the timed step for the mode and workload, the width's class count.
`prepared()` does that and, on exit, drops every reference it made (model, input, step,
a captured CUDA graph and its memory pool) *before* freeing memory, so the next point's
peak is its own.

A peak-memory window, when given, opens after the weights and input exist and *before*
the step is made: a CUDA graph allocates every activation while it is captured (its
replays allocate nothing), and torch.compile's first calls happen there too, so a
window opened later would show graph rows with weights and input only.

On CUDA it runs points the way their users do: cudnn.benchmark on (the warm-up picks
the convolution algorithms before any capture or timing) and ResNet in channels_last;
both are recorded in the row. Building is the slow part of a GPU sweep (initialising
weights on the CPU), and consecutive points share a (family, depth): the model is
built once, kept on the CPU, and each point copies it to the GPU. On the CPU every
point builds its own, so a kept copy never shows in the process's peak RSS.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from .device import free_memory, is_cuda

__all__ = ["HeldPoint", "PointUnsupported", "Prepared", "prepared"]


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
    #: how the point was run, beyond its key (memory format, cudnn.benchmark): for the row
    settings: dict = field(default_factory=dict)

    @property
    def device(self) -> str:
        return self.sweep.device

    def evidence(self) -> dict:
        """The settings, the fused Para-Former's branch-group plan (group size and the
        rule's inputs), and for a compile point what was compiled (raises if nothing
        was). Call after the step has run."""
        out = dict(self.settings)
        plan = getattr(self.model, "branch_plan", None)  # Para-Former's fused branch groups
        if plan is not None and getattr(self.model, "execution", "loop") != "loop":
            out.update(plan(self.point.batch))
        if self.point.mode == "compile":
            from ..workloads import compile_evidence

            out.update(compile_evidence())
        return out


@lru_cache(maxsize=1)
def _cpu_template(family: str, depth: int, width: str, img_size: int):
    """The float32 model on the CPU, built once for a run of points that share it."""
    import torch

    from ..catalog import build

    torch.manual_seed(0)
    return build(family, depth, width=width, img_size=img_size)


def _build(point, sweep, dtype):
    shape = (point.family, point.depth, sweep.width, sweep.img_size)
    if not is_cuda(sweep.device):
        _cpu_template.cache_clear()  # a kept copy would count in this point's peak RSS
        return _cpu_template.__wrapped__(*shape).to(dtype=dtype)  # built afresh, not kept
    return copy.deepcopy(_cpu_template(*shape)).to(device=sweep.device, dtype=dtype)


def _cuda_settings(point, model, x):
    """cudnn.benchmark for every CUDA point; the family's memory format (channels_last
    for ResNet: its convolutions' fast layout on tensor cores). Returns (model, x,
    settings for the row)."""
    import torch

    from ..families import get

    torch.backends.cudnn.benchmark = True
    layout = get(point.family).memory_format
    if layout != "contiguous":
        fmt = getattr(torch, layout)
        model = model.to(memory_format=fmt)
        x = x.contiguous(memory_format=fmt)
    return model, x, {"cudnn_benchmark": True, "memory_format": layout}


@contextmanager
def prepared(point, sweep, *, peak=None) -> Iterator[Prepared]:
    """Build `point` as `sweep` describes it; yield a Prepared; free it all on exit.

    `peak`, a measure.memory.PeakMemory, is started once weights and input exist and
    before the step is made (so graph capture and compilation are inside its window).
    Raises PointUnsupported (before building anything) for a combination this device
    cannot run, UsageError for a model that cannot be built; anything else comes from
    building or capturing and is the caller's to turn into a row.
    """
    import torch

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
        model = _build(point, sweep, dtype)
        x = make_input(point.batch, sweep.img_size, sweep.device, dtype)
        settings = {}
        if is_cuda(sweep.device):
            model, x, settings = _cuda_settings(point, model, x)
        if peak is not None:
            peak.start()
        step = make_step(model, x, mode=point.mode, workload=point.workload,
                         num_classes=WIDTHS[sweep.width].num_classes)
        prep = Prepared(point, sweep, model, x, step, settings)
        del model, x, step
        yield prep
    finally:
        if prep is not None:
            prep.model = prep.x = prep.step = None
        prep = None
        free_memory(sweep.device)


class HeldPoint:
    """One prepared point kept open across calls (an interleaved arm's turns, asv's
    setup/teardown, a count's setup under valgrind), freed by `close()` or by opening
    the next one: the single place that holds `prepared` open outside a `with`."""

    def __init__(self):
        self._stack = ExitStack()
        self.prep: Prepared | None = None

    def open(self, point, sweep) -> Prepared:
        """Build `point` (freeing the one held before); PointUnsupported as `prepared`."""
        self.close()
        self.prep = self._stack.enter_context(prepared(point, sweep))
        return self.prep

    def close(self) -> None:
        self.prep = None
        self._stack.close()
        self._stack = ExitStack()
