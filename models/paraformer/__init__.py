"""Para-Former (Wang & Li, arXiv 2407.21670): K parallel transformer branches, summed.

``ParaFormer(..., execution="loop" | "fused" | "fused-2pass" | "least-work")`` runs
the same function branch after branch (the authors' single-device algorithm), as
one batched pass over stacked branch weights (fused-2pass: without the one-pass
bias + GELU kernel on CUDA), or as that pass restricted to what a CLS head reads
(``pool="cls"`` only: less work for the same output). Importing this package registers the timm
models ``paraformer_{tiny,small,base}_patch16_224``.
"""

from .analytic import (
    block_param_count,
    least_work_block_flops,
    level_traffic,
    paraformer_flops,
    param_count,
    transformer_matmul_flops,
)
from .layers import ParallelBlock, StackedLayerNorm, StackedLinear
from .model import EXECUTIONS, POOLS, RESIDUALS, ParaFormer
from .registry import VARIANTS, create_paraformer
from .shape import ParaFormerShape

__all__ = [
    "EXECUTIONS",
    "POOLS",
    "RESIDUALS",
    "VARIANTS",
    "ParaFormer",
    "ParaFormerShape",
    "ParallelBlock",
    "StackedLayerNorm",
    "StackedLinear",
    "block_param_count",
    "create_paraformer",
    "least_work_block_flops",
    "level_traffic",
    "paraformer_flops",
    "param_count",
    "transformer_matmul_flops",
]
__version__ = "0.1.0"
