"""Shared by the asv benchmark modules: which sweep to run, and preparing one point.

The sizes are a parabench preset (`parabench.config.PRESETS`, the one source of
truth): `PARABENCH_ASV_PRESET` names it; unset, `paper` with CUDA and `quick` without.
Points are built by `parabench.measure.prepare.prepared`, exactly as `parabench run`
builds them.

Importing this module is cheap and never initialises CUDA (asv's forkserver imports
the suite once and forks every benchmark from it; CUDA must not be live before fork).
"""
from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import replace

os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # is_available() without cuInit

import torch  # (imported once by asv's forkserver, so forked benchmarks start fast)

try:  # preload in the forkserver parent: timm alone takes seconds to import per child
    import timm  # noqa: F401

    import parabench.catalog  # noqa: F401
    import parabench.measure.prepare  # noqa: F401
    import parabench.measure.timing  # noqa: F401
except ImportError:  # an old commit without these modules: the benchmarks fail, not discovery
    pass

PRESET_ENV = "PARABENCH_ASV_PRESET"
MODES_ENV = "PARABENCH_ASV_MODES"  # e.g. "eager,graph,compile" to add torch.compile on GPU
THREADS_ENV = "PARABENCH_ASV_THREADS"  # torch CPU threads; "0" keeps torch's default


def _pick_sweep():
    """The preset the suite measures, with the modes/threads overrides applied."""
    from parabench.config import PRESETS

    name = os.environ.get(PRESET_ENV, "").strip().lower()
    if not name:
        name = "paper" if torch.cuda.is_available() else "quick"
    if name not in PRESETS:
        raise ValueError(f"{PRESET_ENV}={name!r}: choose from {', '.join(PRESETS)}")
    sweep = PRESETS[name]
    modes = os.environ.get(MODES_ENV, "").strip()
    if modes:
        sweep = replace(sweep, modes=tuple(m.strip() for m in modes.split(",") if m.strip()))
    threads = os.environ.get(THREADS_ENV, "").strip()
    if threads:
        sweep = replace(sweep, threads=int(threads) or None)
    return sweep


SWEEP = _pick_sweep()
#: asv times one dtype per machine: the preset's first
DTYPE = SWEEP.dtypes[0]

try:  # the families whose depth is a conventional layer count: ResNetLatency measures them
    from parabench.families import LAYER_COUNTED as _LAYER_COUNTED
except ImportError:  # a commit from before the registry (asv measures those too): ResNet
    _LAYER_COUNTED = ("resnet",)
TRANSFORMER_FAMILIES = tuple(f for f in SWEEP.families if f not in _LAYER_COUNTED)
RESNET_DEPTHS = next((SWEEP.depths_for(f) for f in SWEEP.families if f in _LAYER_COUNTED), ())


def skip(reason: str):
    """asv treats NotImplementedError from setup as 'skipped' (result n/a)."""
    raise NotImplementedError(reason)


class PreparedPoint:
    """One point held open between asv's `setup` and `teardown`: `open()` builds it the
    way `parabench run` does, `close()` frees it. Points that cannot run here skip.
    Not measure.prepare.HeldPoint: asv runs this suite against older commits too, whose
    parabench has only `prepared`."""

    def __init__(self):
        self._stack = None
        self.prep = None

    def open(self, family: str, depth: int, batch: int, mode: str = "eager"):
        from parabench import catalog
        from parabench.config import Point
        from parabench.errors import UsageError
        from parabench.measure.prepare import PointUnsupported, prepared

        try:
            catalog.check(family, depth, SWEEP.width, SWEEP.img_size)
        except UsageError as e:
            skip(str(e))
        point = Point(family, depth, batch, DTYPE, mode, "infer")
        self._stack = ExitStack()
        try:
            self.prep = self._stack.enter_context(prepared(point, SWEEP))
        except PointUnsupported as e:
            self.close()
            skip(str(e))
        return self.prep

    def close(self) -> None:
        self.prep = None
        if self._stack is not None:
            self._stack.close()
            self._stack = None


def latency_samples_s(step) -> dict:
    """Time `step` with parabench's timer; return asv's timing-result shape, in seconds."""
    from parabench.measure.timing import measure

    s = SWEEP
    ms = measure(step, device=s.device, warmup=s.warmup, warmup_s=s.warmup_s,
                 min_samples=s.min_samples, max_samples=s.max_samples, min_time_s=s.min_time_s)
    return {"samples": [t / 1e3 for t in ms], "number": 1}
