"""Buffers a CPU forward without autograd reuses for the fused levels' intermediates.

Why (issue 24): on a CPU every large tensor a forward frees goes back to glibc, whose
heuristics decide whether it returns the pages to the OS. The fused execution alone in
a process at ViT-S width, K 4, batch 8 took 21,148 page faults a call (66 ms of system
time in 210 ms); the same model beside the loop in one process took 118 and 174 ms.
Which models had run before decided its speed. With every intermediate of a level
written into a buffer that outlives the call, the pages stay mapped and the time is the
arithmetic's: the plan already moves as few bytes as the operators allow, and now it
stops asking the OS for them again on every call.

Where it applies: CPU tensors, no autograd (``torch.no_grad`` or ``inference_mode``;
with autograd the intermediates are saved for backward and cannot be overwritten), and
outside torch.compile (the compiler plans its own buffers). CUDA needs none: PyTorch's
caching allocator keeps freed blocks for the next call already.

One workspace per thread, so threads sharing a model in inference do not write into
each other's buffers. Each buffer is a flat tensor grown to the largest size asked for;
a smaller request (a last, smaller group) is a view of its front. What a forward
returns is never a view of a buffer: the last level writes into fresh memory unless
its output is reduced first. ``ParaFormer.release_workspace()`` frees them.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Workspace", "kept", "workspace_for"]


class Workspace:
    """Named flat buffers; :meth:`take` returns a view of the requested shape."""

    def __init__(self) -> None:
        self._flat: dict[str, Tensor] = {}
        #: (name, shape, dtype, inference mode) -> the view take() returned for them
        self._views: dict[tuple, Tensor] = {}
        #: (a level's call signature, inference mode) -> the views it derives from buffers
        self._level_views: dict[tuple, dict] = {}
        self._ones: Tensor | None = None

    def take(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        # a buffer made under inference_mode cannot be written outside it, and the
        # reverse would make every output an inference tensor's view: one per mode
        inference = torch.is_inference_mode_enabled()
        # the same request as before: the same view object. A forward takes a dozen,
        # and checking the buffer and making the view cost 10 us each (at K 1, batch 1
        # that was a sixth of what the fused execution spent in Python)
        key = (name, shape, like.dtype, inference)
        view = self._views.get(key)
        if view is not None:
            return view
        n = math.prod(shape)
        flat = self._flat.get(name)
        if (flat is None or flat.numel() < n or flat.dtype != like.dtype
                or flat.device != like.device or flat.is_inference() != inference):
            if flat is not None:
                # views of the buffer this one replaces would keep it alive: forget them
                self._views = {k: v for k, v in self._views.items() if k[0] != name}
                self._level_views.clear()
            flat = torch.empty(n, dtype=like.dtype, device=like.device)
            self._flat[name] = flat
        view = self._views[key] = flat[:n].view(shape)
        return view

    def views(self, signature: tuple) -> dict:
        """The views a fused level derives from its buffers (k and v out of the kv GEMM's
        output, the accumulators' rows) for one call ``signature``: a dict it fills on
        its first call and reads on the next, valid until a buffer is replaced."""
        key = (signature, torch.is_inference_mode_enabled())
        views = self._level_views.get(key)
        if views is None:
            views = self._level_views[key] = {}
        return views

    def ones(self, n: int, like: Tensor) -> Tensor:
        """``n`` ones of ``like``'s dtype and device, made once: the unit weight the
        fused levels give their norms (``paraformer.fused.norm_without_affine``). Only
        read, so one made under inference_mode serves outside it too."""
        t = self._ones
        if t is None or t.numel() != n or t.dtype != like.dtype or t.device != like.device:
            t = self._ones = torch.ones(n, dtype=like.dtype, device=like.device)
        return t


def workspace_for(model, x: Tensor) -> Workspace | None:
    """This thread's workspace of ``model`` for a forward on ``x``, or None where the
    fused levels must allocate as usual (CUDA, autograd, torch.compile)."""
    if torch.is_grad_enabled() or not x.is_cpu or torch.compiler.is_compiling():
        return None
    # get, then set: setdefault would build a throwaway dict and Workspace every call
    spaces = model.__dict__.get("_workspaces")
    if spaces is None:
        spaces = model.__dict__["_workspaces"] = {}
    ident = threading.get_ident()
    ws = spaces.get(ident)
    if ws is None:
        ws = spaces[ident] = Workspace()
    return ws


def kept(views: dict | None, name: str, base: Tensor, make: Callable[[], Tensor | tuple]):
    """``make()``, views derived from the workspace buffer ``base``, kept in ``views``
    (those of one call signature, :meth:`Workspace.views`) where there are any, and
    made again if ``base`` is no longer the buffer they were made from. A view costs
    about 2 us to make, and a fused level makes a dozen on every call, where the loop
    at K 1 makes none. ``base`` must be a buffer (:meth:`Workspace.take`), never a
    fresh tensor: the next call would read the views of this one's."""
    if views is None:
        return make()
    entry = views.get(name)
    if entry is None or entry[0] is not base:
        entry = views[name] = (base, make())
    return entry[1]
