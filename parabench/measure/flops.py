"""Forward FLOPs per image with torch.utils.flop_counter.

Fused attention is the trap: some torch versions count scaled_dot_product_attention as
0 on CPU, and the efficient GPU kernels are undercounted by some counters. Counting
under the MATH backend makes SDPA decompose into plain matmuls, which every version
counts, on CPU and GPU alike. FLOPs are 2 x multiply-accumulates.
"""
from __future__ import annotations

__all__ = ["count_forward_flops"]


def count_forward_flops(model, example) -> float:
    """FLOPs of one forward of `model` on `example`, divided by the batch size."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(example)
    return counter.get_total_flops() / example.shape[0]
