"""Family name + depth -> nn.Module, and what each model costs (parameters, FLOPs).

Every model is built through timm's registry, the way users build them, without dropout
(timm's ViT and ResNet default to none; Para-Former's authors use 0.1, which would make
a training step pay for dropout kernels the others do not run):
- `paraformer-loop` / `paraformer-fused`: Para-Former with K = depth branches of depth 1
  ("K layers" in the paper's sense), run branch after branch or fused into one pass.
- `paraformer-least-work`: the same model and parameters, fused, computing only what the
  CLS head reads (the last block of each branch for the CLS row only, keys and values
  for every token): the same output for about a sixth of the FLOPs per branch at ViT-S
  width. Not an equal-FLOPs comparison; its counted FLOPs say so.
- `paraformer-serial`: Para-Former's own code with one branch of depth `depth`, the serial
  twin: same modules and kernels, so parallel/serial isolates parallelism from the
  framework overhead that differs between Para-Former's code and timm's ViT.
- `vit`: timm's serial VisionTransformer at the same width, `depth` blocks.
- `vit-parallel`: timm's ParallelThingsBlock ViT (the `vit_small_patch16_18x2_224`
  design); depth counts sequential blocks, each holding two parallel attention and
  two parallel MLP branches, so its FLOPs equal a serial ViT of depth 2 x depth.
- `resnet`: timm ResNet; depth is the conventional layer count. 18/34/50/101/152 are
  the standard nets; another depth d builds BasicBlocks (d < 50, d = 2*blocks + 2) or
  Bottlenecks (d >= 50, d = 3*blocks + 2) spread evenly over the four stages.
"""
from __future__ import annotations

from functools import cache

from .config import FAMILIES, RESNET_STANDARD_DEPTHS, WIDTHS, Width
from .errors import UsageError

__all__ = ["build", "check", "compute_kind", "depth_meaning", "model_info", "paraformer_shape",
           "resnet_layers"]

_RESNET_BLOCKS = {18: "basic", 34: "basic", 50: "bottleneck", 101: "bottleneck", 152: "bottleneck"}
_RESNET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                  152: (3, 8, 36, 3)}


def resnet_layers(depth: int) -> tuple[str, tuple[int, int, int, int]]:
    """(block kind, blocks per stage) for a ResNet of `depth` layers."""
    if depth in RESNET_STANDARD_DEPTHS:
        return _RESNET_BLOCKS[depth], _RESNET_LAYERS[depth]
    kind, per_block = ("basic", 2) if depth < 50 else ("bottleneck", 3)
    blocks, rem = divmod(depth - 2, per_block)
    if rem or blocks < 4:
        raise UsageError(
            f"resnet depth {depth} is not buildable: use {', '.join(map(str, RESNET_STANDARD_DEPTHS))}"
            f" or 2*blocks+2 (>= 10, basic blocks) below 50, 3*blocks+2 from 50 up"
        )
    base, extra = divmod(blocks, 4)
    # extra blocks go to the third stage first, as the standard deep ResNets do
    layers = [base] * 4
    for i in (2, 1, 3, 0)[:extra]:
        layers[i] += 1
    return kind, tuple(layers)


def paraformer_shape(family: str, depth: int) -> tuple[int, int]:
    """(branches K, branch_depth) of a Para-Former family at `depth` layers."""
    return (1, depth) if family == "paraformer-serial" else (depth, 1)


def compute_kind(family: str) -> str:
    """What a family's heavy kernels are: "conv" (ResNet) or "matmul" (the transformers).
    On CUDA float32 each has its own TF32 switch, so its own measured peak."""
    return "conv" if family == "resnet" else "matmul"


def depth_meaning(family: str, depth: int) -> dict | None:
    """What `depth` builds: {'layers': blocks in the model, 'critical_path': blocks one
    input row passes through in sequence}; None for ResNet (its depth is a layer count).

    Para-Former's K branches of branch_depth blocks have K*branch_depth layers but a
    critical path of branch_depth blocks; timm's parallel ViT has two branches per block.
    """
    if family == "resnet":
        return None
    if family.startswith("paraformer"):
        k, branch_depth = paraformer_shape(family, depth)
        return {"layers": k * branch_depth, "critical_path": branch_depth}
    if family == "vit-parallel":
        return {"layers": 2 * depth, "critical_path": depth}
    return {"layers": depth, "critical_path": depth}


def check(family: str, depth: int, width: str, img_size: int) -> Width:
    """Raise UsageError if this model cannot be built; cheap (builds nothing)."""
    if family not in FAMILIES:
        raise UsageError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    if depth < 1:
        raise UsageError(f"depth must be >= 1, got {depth}")
    if width not in WIDTHS:
        raise UsageError(f"unknown width {width!r}; choose from {', '.join(WIDTHS)}")
    w = WIDTHS[width]
    if family != "resnet" and img_size % w.patch:
        raise UsageError(f"image size {img_size} is not divisible by the patch size {w.patch}")
    if family == "resnet":
        resnet_layers(depth)
    return w


def _create(name: str, **kwargs):
    import timm

    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except ValueError as e:  # Para-Former's argument checks
        raise UsageError(str(e)) from None


def build(family: str, depth: int, *, width: str = "tiny", img_size: int = 32,
          device: str = "cpu", dtype=None):
    """Build the model in eval mode on `device`, cast to `dtype` (default float32)."""
    w = check(family, depth, width, img_size)
    if family.startswith("paraformer"):
        import paraformer  # noqa: F401  (registers the Para-Former entrypoints with timm)

        branches, branch_depth = paraformer_shape(family, depth)
        model = _create(
            "paraformer_small_patch16_224", img_size=img_size, patch_size=w.patch,
            num_classes=w.num_classes, embed_dim=w.dim, num_heads=w.heads, head_dim=w.head_dim,
            mlp_dim=w.mlp_dim, num_branches=branches, branch_depth=branch_depth,
            execution="fused" if family == "paraformer-serial" else family.split("-", 1)[1],
            drop_rate=0.0, attn_drop_rate=0.0, emb_drop_rate=0.0,
        )
    elif family in ("vit", "vit-parallel"):
        if w.dim != w.heads * w.head_dim:
            raise UsageError(f"width {width!r}: timm ViT needs dim == heads * head_dim")
        name = "vit_small_patch16_224" if family == "vit" else "vit_small_patch16_18x2_224"
        model = _create(
            name, depth=depth, img_size=img_size, patch_size=w.patch, num_classes=w.num_classes,
            embed_dim=w.dim, num_heads=w.heads, mlp_ratio=w.mlp_dim / w.dim,
        )
    else:
        kind, layers = resnet_layers(depth)
        model = _create("resnet18" if kind == "basic" else "resnet50", layers=layers,
                        num_classes=w.num_classes)
    model.eval()
    import torch

    return model.to(device=device, dtype=dtype or torch.float32)


def _analytic_flops(family: str, depth: int, w: Width, img_size: int) -> float | None:
    if family == "resnet":
        return None  # the cross-check formula covers the transformer families only
    from paraformer.analytic import paraformer_flops, transformer_matmul_flops

    if family.startswith("paraformer"):
        branches, branch_depth = paraformer_shape(family, depth)
        return float(paraformer_flops(
            img_size=img_size, patch_size=w.patch, num_classes=w.num_classes, embed_dim=w.dim,
            num_heads=w.heads, head_dim=w.head_dim, mlp_dim=w.mlp_dim, num_branches=branches,
            branch_depth=branch_depth, execution=family.split("-", 1)[1]))
    blocks = 2 * depth if family == "vit-parallel" else depth
    return float(transformer_matmul_flops(
        num_tokens=(img_size // w.patch) ** 2 + 1, dim=w.dim, num_heads=w.heads,
        head_dim=w.head_dim, mlp_dim=w.mlp_dim, num_blocks=blocks,
        patch_dim=w.patch * w.patch * 3, num_classes=w.num_classes,
    ))


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
