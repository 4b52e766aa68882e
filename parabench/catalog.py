"""Family name + depth -> nn.Module, and what each model costs (parameters, FLOPs).

The families themselves (how each is built, checked, counted) are declared once in
`parabench.families`; this module is the front door the rest of parabench calls with a
family's name: it checks the request, builds in eval mode on a device, and counts.
"""
from __future__ import annotations

from functools import cache

from . import families
from .config import WIDTHS, Width
from .errors import UsageError
from .resnet import resnet_layers

__all__ = ["build", "check", "compute_kind", "depth_meaning", "model_info", "paraformer_shape",
           "resnet_layers"]


def paraformer_shape(family: str, depth: int) -> tuple[int, int]:
    """(branches K, branch_depth) of a Para-Former family at `depth` layers."""
    layout = families.get(family).layout
    if layout is None:
        raise UsageError(f"family {family!r}: depth is a layer count, not branches of blocks")
    return layout(depth)


def compute_kind(family: str) -> str:
    """What a family's heavy kernels are: "conv" (ResNet) or "matmul" (the transformers).
    On CUDA float32 each has its own TF32 switch, so its own measured peak."""
    return families.get(family).compute_kind


def depth_meaning(family: str, depth: int) -> dict | None:
    """What `depth` builds: {'layers': blocks in the model, 'critical_path': blocks one
    input row passes through in sequence}; None for ResNet (its depth is a layer count).

    Para-Former's K branches of branch_depth blocks have K*branch_depth layers but a
    critical path of branch_depth blocks; timm's parallel ViT has two branches per block.
    """
    return families.get(family).depth_meaning(depth)


def check(family: str, depth: int, width: str, img_size: int) -> Width:
    """Raise UsageError if this model cannot be built; cheap (builds nothing)."""
    fam = families.get(family)
    if depth < 1:
        raise UsageError(f"depth must be >= 1, got {depth}")
    if width not in WIDTHS:
        raise UsageError(f"unknown width {width!r}; choose from {', '.join(WIDTHS)}")
    w = WIDTHS[width]
    fam.check_depth(depth, w, img_size)
    return w


def build(family: str, depth: int, *, width: str = "tiny", img_size: int = 32,
          device: str = "cpu", dtype=None):
    """Build the model in eval mode on `device`, cast to `dtype` (default float32)."""
    w = check(family, depth, width, img_size)
    model = families.get(family).build(depth, w, img_size)
    model.eval()
    import torch

    return model.to(device=device, dtype=dtype or torch.float32)


def _analytic_flops(family: str, depth: int, w: Width, img_size: int) -> float | None:
    formula = families.get(family).analytic_flops  # None: the cross-check covers transformers
    return None if formula is None else formula(depth, w, img_size)


@cache
def model_info(family: str, depth: int, *, width: str = "tiny", img_size: int = 32) -> dict:
    """{'params', 'flops' (counted, per image), 'flops_analytic' (None for ResNet)}."""
    w = check(family, depth, width, img_size)
    params, flops = _count_on("meta", family, depth, width, img_size)
    return {"params": params, "flops": flops,
            "flops_analytic": _analytic_flops(family, depth, w, img_size)}


def _count_on(device: str, family: str, depth: int, width: str, img_size: int):
    """(parameters, forward FLOPs per image), counted on `device`. On "meta" nothing is
    initialised or computed (shapes only): a fraction of a second instead of building
    and running the model on the CPU, which took most of a 200-point GPU sweep's
    set-up. A model whose forward needs real values falls back to the CPU."""
    import torch

    from .measure.flops import count_forward_flops

    try:
        with torch.device(device):
            model = build(family, depth, width=width, img_size=img_size, device=device)
            x = torch.zeros(1, 3, img_size, img_size, device=device)
            return sum(p.numel() for p in model.parameters()), count_forward_flops(model, x)
    except (NotImplementedError, RuntimeError):
        if device == "cpu":
            raise
        return _count_on("cpu", family, depth, width, img_size)
