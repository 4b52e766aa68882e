"""The model families, each declared once in `REGISTRY`; the rest of parabench asks it.

Every model is built through timm's registry, the way users build them, without dropout
(timm's ViT and ResNet default to none; Para-Former's authors use 0.1, which would make
a training step pay for dropout kernels the others do not run):
- `paraformer-loop` / `paraformer-fused`: Para-Former with K = depth branches of depth 1
  ("K layers" in the paper's sense), run branch after branch or fused into one pass.
- `paraformer-fused-2pass`: fused, with fc1's bias and GELU as two eager passes instead
  of the one-pass CUDA kernel (paraformer.epilogue): that kernel's A/B, per instance.
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
# (`parabench list families` prints the docstring above from its second paragraph on.)
#
# Imports: this module needs nothing from parabench but `errors`, and imports torch,
# timm and paraformer only inside the builders. `config` imports it at module level (to
# derive FAMILIES and read RESNET_STANDARD_DEPTHS), so it must never import `config`:
# a `Width` is only passed in (the type is imported for annotations alone).
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from .errors import UsageError
from .resnet import RESNET_STANDARD_DEPTHS, resnet_layers

if TYPE_CHECKING:
    from .config import Width

__all__ = ["LAYER_COUNTED", "LESS_WORK", "REFERENCES", "REGISTRY", "RESNET_STANDARD_DEPTHS", "Family",
           "get", "serial_twins", "standard_depth_overrides"]

#: (parallel branches, blocks per branch) that a transformer family builds at a depth
Layout = Callable[[int], tuple[int, int]]


def _parallel(depth: int) -> tuple[int, int]:
    return depth, 1  # Para-Former's K = depth branches of one block


def _serial(depth: int) -> tuple[int, int]:
    return 1, depth


def _two_wide(depth: int) -> tuple[int, int]:
    return 2, depth  # timm's parallel ViT: two attention and two MLP branches per block


@dataclass(frozen=True)
class Family:
    """Everything parabench asks about one model family. Builders and formulas take
    (depth, Width, img_size); `check_depth` raises UsageError, builds nothing."""

    name: str
    description: str  # one line
    build: Callable[[int, Width, int], object]  # -> nn.Module, default dtype, on the CPU
    check_depth: Callable[[int, Width, int], None]
    #: the closed-form FLOPs per image, cross-checking the counted ones; None: no formula
    analytic_flops: Callable[[int, Width, int], float] | None
    #: (branches, blocks per branch) at a depth; None: depth is a layer count (ResNet)
    layout: Layout | None
    compute_kind: str = "matmul"  # "conv" or "matmul": which TF32 peak its kernels reach
    memory_format: str = "contiguous"  # on CUDA: a torch memory format's name
    #: serial families compared with this one at equal depth (analysis.parallel_over_serial)
    serial_twins: tuple[str, ...] = ()
    #: False where it does less work than its twins for the same output (least-work)
    equal_flops: bool = True
    #: depths the big presets sweep instead of theirs (ResNet's standard nets); None: theirs
    standard_depths: tuple[int, ...] | None = None
    #: a baseline the others are measured against when arms take turns (the authors'
    #: loop, timm's serial ViT): the report's ratios are over these
    reference: bool = False

    @property
    def transformer(self) -> bool:
        """Depth counts blocks (True) or is a conventional layer count (False)."""
        return self.layout is not None

    def depth_meaning(self, depth: int) -> dict | None:
        """{'layers': blocks in the model, 'critical_path': blocks one input row passes
        through in sequence}; None where depth is a layer count."""
        if self.layout is None:
            return None
        branches, branch_depth = self.layout(depth)
        return {"layers": branches * branch_depth, "critical_path": branch_depth}


# -- builders and formulas ---------------------------------------------------------------
def _create(name: str, **kwargs):
    import timm

    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except ValueError as e:  # Para-Former's argument checks
        raise UsageError(str(e)) from None


def _patch_divides(depth: int, w: Width, img_size: int) -> None:
    if img_size % w.patch:
        raise UsageError(f"image size {img_size} is not divisible by the patch size {w.patch}")


def _resnet_depth(depth: int, w: Width, img_size: int) -> None:
    resnet_layers(depth)


def _paraformer_shape(layout: Layout, depth: int, w: Width, img_size: int):
    from paraformer import ParaFormerShape

    branches, branch_depth = layout(depth)
    return ParaFormerShape(
        img_size=img_size, patch_size=w.patch, num_classes=w.num_classes, embed_dim=w.dim,
        num_heads=w.heads, head_dim=w.head_dim, mlp_dim=w.mlp_dim, num_branches=branches,
        branch_depth=branch_depth)


def _build_paraformer(execution: str, layout: Layout, depth: int, w: Width, img_size: int):
    shape = _paraformer_shape(layout, depth, w, img_size)  # imports paraformer: registers it
    return _create("paraformer_small_patch16_224", **shape.as_kwargs(), execution=execution,
                   drop_rate=0.0, attn_drop_rate=0.0, emb_drop_rate=0.0)


def _paraformer_flops(execution: str, layout: Layout, depth: int, w: Width,
                      img_size: int) -> float:
    from paraformer.analytic import paraformer_flops

    return float(paraformer_flops(_paraformer_shape(layout, depth, w, img_size),
                                  execution=execution))


def _build_vit(timm_name: str, depth: int, w: Width, img_size: int):
    if w.dim != w.heads * w.head_dim:
        raise UsageError(f"width {w.dim}/{w.heads}x{w.head_dim}: timm ViT needs dim == heads"
                         " * head_dim")
    return _create(timm_name, depth=depth, img_size=img_size, patch_size=w.patch,
                   num_classes=w.num_classes, embed_dim=w.dim, num_heads=w.heads,
                   mlp_ratio=w.mlp_dim / w.dim)


def _vit_flops(layout: Layout, depth: int, w: Width, img_size: int) -> float:
    from paraformer.analytic import transformer_matmul_flops

    branches, branch_depth = layout(depth)
    return float(transformer_matmul_flops(
        num_tokens=(img_size // w.patch) ** 2 + 1, dim=w.dim, num_heads=w.heads,
        head_dim=w.head_dim, mlp_dim=w.mlp_dim, num_blocks=branches * branch_depth,
        patch_dim=w.patch * w.patch * 3, num_classes=w.num_classes,
    ))


def _build_resnet(depth: int, w: Width, img_size: int):
    kind, layers = resnet_layers(depth)  # (img_size: a convolutional net takes any)
    return _create("resnet18" if kind == "basic" else "resnet50", layers=layers,
                   num_classes=w.num_classes)


def _paraformer(name: str, description: str, execution: str, layout: Layout,
                **more) -> Family:
    return Family(name, description, build=partial(_build_paraformer, execution, layout),
                  check_depth=_patch_divides,
                  analytic_flops=partial(_paraformer_flops, execution, layout), layout=layout,
                  **more)


def _vit(name: str, description: str, timm_name: str, layout: Layout, **more) -> Family:
    return Family(name, description, build=partial(_build_vit, timm_name),
                  check_depth=_patch_divides, analytic_flops=partial(_vit_flops, layout),
                  layout=layout, **more)


# -- the registry ------------------------------------------------------------------------
_TWINS = ("paraformer-serial", "vit")

#: the families, in the order reports and `config.FAMILIES` list them
_DECLARED = (
    _paraformer("paraformer-loop", "Para-Former, K = depth branches of one block, run one "
                "after another", "loop", _parallel, serial_twins=_TWINS, reference=True),
    _paraformer("paraformer-fused", "Para-Former, K = depth branches of one block, fused "
                "into one pass", "fused", _parallel, serial_twins=_TWINS),
    _paraformer("paraformer-fused-2pass", "Para-Former fused, fc1's bias and GELU as two "
                "passes (the A/B of the one-pass CUDA kernel; fused on a CPU)", "fused-2pass",
                _parallel, serial_twins=_TWINS),
    _paraformer("paraformer-least-work", "Para-Former fused, computing only what the CLS "
                "head reads (less work, same output)", "least-work", _parallel,
                serial_twins=_TWINS, equal_flops=False),
    _paraformer("paraformer-serial", "Para-Former's code with one branch of depth blocks: "
                "the serial twin", "fused", _serial),
    _vit("vit", "timm's serial VisionTransformer, depth blocks", "vit_small_patch16_224",
         _serial, reference=True),
    _vit("vit-parallel", "timm's parallel ViT, depth blocks of two parallel branches",
         "vit_small_patch16_18x2_224", _two_wide, serial_twins=("vit",)),
    Family("resnet", "timm ResNet, depth = conventional layer count", build=_build_resnet,
           check_depth=_resnet_depth, analytic_flops=None, layout=None, compute_kind="conv",
           memory_format="channels_last", standard_depths=RESNET_STANDARD_DEPTHS),
)
#: name -> Family
REGISTRY: dict[str, Family] = {f.name: f for f in _DECLARED}

if len(REGISTRY) != len(_DECLARED):
    raise AssertionError("two families share a name")

for _f in REGISTRY.values():  # a twin must be a family of its own, measured beside it
    for _twin in _f.serial_twins:
        if _twin not in REGISTRY:
            raise AssertionError(f"family {_f.name!r}: serial twin {_twin!r} is not registered")

#: families whose depth is a conventional layer count (`--resnet-depth` gives their depths)
LAYER_COUNTED = tuple(n for n, f in REGISTRY.items() if not f.transformer)
#: families that do less work than their serial twins: never an equal-FLOPs comparison
LESS_WORK = tuple(n for n, f in REGISTRY.items() if not f.equal_flops)
#: the baselines of arms in turns, in registry order
REFERENCES = tuple(n for n, f in REGISTRY.items() if f.reference)


def get(name: str) -> Family:
    """The family called `name`; UsageError (one line) for one that is not registered."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name from a damaged file
        raise UsageError(f"unknown family {name!r}; choose from {', '.join(REGISTRY)}") from None


def serial_twins() -> dict[str, tuple[str, ...]]:
    """Each parallel family -> the serial families it is compared with at equal depth."""
    return {n: f.serial_twins for n, f in REGISTRY.items() if f.serial_twins}


def standard_depth_overrides() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """A Sweep's depth_overrides that give each family its standard depths, if it has any."""
    return tuple((n, f.standard_depths) for n, f in REGISTRY.items() if f.standard_depths)
