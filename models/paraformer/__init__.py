"""Para-Former (Wang & Li, arXiv 2407.21670): K parallel transformer branches, summed.

``ParaFormer(..., execution="loop" | "fused")`` runs the same function either
branch after branch (the authors' single-device algorithm) or as one batched
pass over stacked branch weights. Importing this package registers the timm
models ``paraformer_{tiny,small,base}_patch16_224``.
"""

from .analytic import block_param_count, paraformer_flops, param_count, transformer_matmul_flops
from .layers import ParallelBlock, StackedLayerNorm, StackedLinear
from .model import EXECUTIONS, POOLS, RESIDUALS, ParaFormer
from .registry import VARIANTS, create_paraformer

__all__ = [
    "EXECUTIONS",
    "POOLS",
    "RESIDUALS",
    "VARIANTS",
    "ParaFormer",
    "ParallelBlock",
    "StackedLayerNorm",
    "StackedLinear",
    "block_param_count",
    "create_paraformer",
    "paraformer_flops",
    "param_count",
    "transformer_matmul_flops",
]
__version__ = "0.1.0"
