"""How many branches the fused execution runs at once (the group size G), and running them.

Why groups (issue 24): on a quiet 2-core CPU (load 1.5-1.8) the fused execution at ViT-S
width, K 12, batch 8 took 1.20x the loop's time. All K branches at once make an FFN
intermediate ``[K, B*N, M]`` of 116 MB (float32) that streams through memory, where the
loop's one branch (9.7 MB) stays in the 32 MiB last-level cache. Under load the ranking
flipped (fused/loop 0.53): contention punishes the loop's many small operations more.
So the fused levels run the branches in groups of G, each group through every level,
its output reduced before the next group starts: G = 1 is the loop's working set with
the fused plan's operations, G = K the single batched pass.

The rule (:func:`choose_group`)::

    per_branch = B * n * W * bytes        the largest activation one branch makes:
                                          W = max(M, 3*H*dh) (fc1 output or q|k|v), or
                                          2*H*dh (k|v) when the only level is least-work's
    most = clamp(budget // per_branch, 1, K)
    G = ceil(K / ceil(K / most))          the same number of groups, evened out
    budget = CPU:  CACHE_FRACTION * the last-level cache the machine reports
             CUDA: a quarter of the device's memory (all K unless that would not fit)

Why five eighths of the cache: at ViT-S width, batch 8 (9.7 MB a branch, 32 MiB cache),
on a quiet machine, fused models alternating in one process, two branches at a time
(19.4 MB) took 0.974, 0.983 and 0.981 of one branch's time at K 4, 12 and 24, and three
(29 MB) 1.16 at K 12; at batch 1 (1.2 MB a branch) all twelve had taken 0.89 of the
loop's time and one 0.99 (load 2.2-2.4 while tests ran: indicative only). The
rest of the cache holds the weights and the other activations of a level beside the
largest one. (Half the cache, the budget before, ran those cells one branch at a time:
0.98-1.00 of the loop's time, where two a time leaves more room below it.)

G is a Python int from shapes and constants, so the same plan runs eagerly, under
torch.compile and inside a CUDA-graph capture.
"""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .folds import refresh_folds
from .fused import fused_level, norm_without_affine
from .workspace import workspace_for

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CACHE_BYTES", "CACHE_FRACTION", "CACHE_SOURCE", "branch_plan", "choose_group",
           "prepare_compiled", "run_levels"]

#: Used when the machine reports no cache size (8 MiB: a common last-level cache).
DEFAULT_CACHE_BYTES = 8 * 2**20
#: Share of the last-level cache one group's largest activation may take.
CACHE_FRACTION = 0.625
#: Share of a CUDA device's memory one group's largest activation may take.
CUDA_FRACTION = 0.25


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def last_level_cache() -> tuple[int, str]:
    """(bytes, where the number came from) of the largest data cache the machine reports."""
    best = 0
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(f"{d}/type") as t, open(f"{d}/size") as s:
                if t.read().strip() != "Instruction":
                    best = max(best, _size(s.read()))
        except (OSError, ValueError):
            continue
    if best:
        return best, "sysfs"
    for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        try:
            size = os.sysconf(name)
        except (ValueError, OSError):
            continue
        if size > 0:
            return size, f"sysconf {name}"
    return DEFAULT_CACHE_BYTES, "default"


#: Read once at import: a plain constant inside compiled or captured forwards.
CACHE_BYTES, CACHE_SOURCE = last_level_cache()
#: Device index -> total memory in bytes, filled on first use by an eager forward.
_CUDA_MEMORY: dict[int, int] = {}


def _cuda_memory(device: torch.device) -> int:
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _CUDA_MEMORY:
        _CUDA_MEMORY[index] = torch.cuda.get_device_properties(index).total_memory
    return _CUDA_MEMORY[index]


@torch.compiler.disable
def prepare_compiled(model) -> None:
    """Eagerly, before the compiled levels (one graph break): bring the folds up to date
    and learn the device's memory, so the traced plan reads constants only."""
    refresh_folds(model.blocks)
    device = model.cls_token.device
    if device.type == "cuda":
        _cuda_memory(device)


def choose_group(num_branches: int, per_branch_bytes: int, budget_bytes: int) -> int:
    """The rule: as many branches as fit in the budget (at least 1, at most K), then
    evened out over the groups that takes (K 24 with room for 13: two groups of 12)."""
    most = max(1, min(num_branches, budget_bytes // max(1, per_branch_bytes)))
    return -(-num_branches // -(-num_branches // most))


def branch_plan(model, batch: int, dtype: torch.dtype, device: torch.device,
                cls_only: bool = False) -> dict:
    """The group size the fused levels use for ``batch`` images, and the rule's inputs."""
    K, width = model.num_branches, max(model.mlp_dim, 3 * model.num_heads * model.head_dim)
    if cls_only and model.branch_depth == 1:  # the one level's FFN runs on the CLS row
        width = 2 * model.num_heads * model.head_dim
    per_branch = batch * model.num_tokens * width * dtype.itemsize
    if device.type == "cuda":
        budget, source = int(CUDA_FRACTION * _cuda_memory(device)), "cuda memory"
    else:
        budget, source = int(CACHE_FRACTION * CACHE_BYTES), f"last-level cache ({CACHE_SOURCE})"
    group = choose_group(K, per_branch, budget)
    if model.branch_group is not None:
        group, source = min(K, model.branch_group), "branch_group"
    return {"fused_group": group, "fused_branch_bytes": per_branch,
            "fused_budget_bytes": budget, "fused_group_rule": source}


def _schedule(model, x0: Tensor, cls_only: bool, reduced: bool) -> tuple:
    """(the groups' spans, each level's output buffer name) for a forward on ``x0``.

    Kept on the model per (batch, dtype, device, cls_only, reduced, branch_group): the
    rule reads shapes and constants only, and working it out again on every call cost
    about 20 us, which the fused execution at K 1, batch 1 paid where the loop does not.
    Not kept inside torch.compile, which traces the rule into constants itself.
    """
    key = (x0.shape[0], x0.dtype, x0.device, cls_only, reduced, model.branch_group)
    kept = None if torch.compiler.is_compiling() else model.__dict__.get("_schedules")
    if kept is not None and key in kept:
        return kept[key]
    K, last = model.num_branches, len(model.blocks) - 1
    G = branch_plan(model, x0.shape[0], x0.dtype, x0.device, cls_only)["fused_group"]
    spans = tuple((k, min(K, k + G)) for k in range(0, K, G))
    outs = tuple(f"level-out-{i % 2}" for i in range(last)) + ("last-out" if reduced else None,)
    plan = (spans, outs)
    if not torch.compiler.is_compiling():
        model.__dict__.setdefault("_schedules", {})[key] = plan
    return plan


def run_levels(model, x0: Tensor, cls_only: bool,
               reduce: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Every fused level for all branches, group by group.

    Returns the per-branch outputs ``[K, ...]`` (concatenated over the groups), or with
    ``reduce`` the sum over the groups of ``reduce(group's outputs)``: each group's
    outputs are then dropped before the next group runs.

    On a CPU without autograd the levels write into the model's workspace
    (:mod:`paraformer.workspace`), level outputs alternating between two buffers; the
    last level's output is fresh memory unless ``reduce`` makes a new tensor of it.
    """
    blocks = model.blocks
    spans, outs = _schedule(model, x0, cls_only, reduce is not None)
    last = len(outs) - 1
    # the shared input's norm, once for every group
    ws = workspace_for(model, x0)
    xhat0 = None if len(spans) == 1 else norm_without_affine(x0, blocks[0].norm1.eps, ws)
    parts = []
    for span in spans:
        x = x0
        for i, blk in enumerate(blocks):
            x = fused_level(blk, x, cls_only and i == last, span, xhat0 if i == 0 else None,
                            ws, outs[i])
        parts.append(x if reduce is None else reduce(x))
    if reduce is None:
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out
