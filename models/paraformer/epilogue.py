"""fc1's bias and exact GELU in one pass over the GEMM's output (CUDA, Triton).

Why: the eager way to get ``gelu(x @ W + b)`` for K branches at once is
``baddbmm(b, x, W)`` then an in-place GELU. On CUDA, ``baddbmm`` with a broadcast bias
first copies the bias into the whole ``[K, rows, M]`` output, the GEMM reads it back
(beta = 1) and writes it, and GELU reads and writes it again: five passes over the
largest activation of the block. ``bmm`` plus this kernel is three: the GEMM writes
once, and one kernel reads each element, adds its bias, applies GELU and writes it
back. That is what timm's ``Linear`` + ``GELU`` costs (cuBLASLt adds the bias in its
epilogue, GELU is a second pass).

Why not the GEMM epilogue itself (``torch._addmm_activation``, cuBLASLt's
``GELU_BIAS``, one pass): it computes the tanh approximation of GELU, so Para-Former
would no longer compute the same function as the loop execution and the authors'
model, and it is a 2-D ``addmm``, so K branches would need K GEMM launches per level
instead of one batched GEMM. The kernel here keeps the exact (erf) GELU that
``nn.GELU()`` computes and one launch per level.

The kernel computes in float32 and rounds once to the tensor's dtype, as PyTorch's
own GELU kernel does for half and bfloat16 inputs. It runs only for inference on CUDA
(autograd needs the pre-activation, which an in-place pass destroys); elsewhere the
fused execution keeps ``baddbmm`` and GELU (on CPU the GEMM dominates, and a bias copy
costs about what a separate bias pass would). A model built with
``execution="fused-2pass"`` keeps them on CUDA too: the A/B of this kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:  # Triton ships with the CUDA builds of torch; CPU-only installs may lack it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None

__all__ = ["autograd_records", "bias_gelu_", "one_pass_available"]

#: Columns per program: each program adds the bias to, and applies GELU over, one
#: stretch of one row, so the branch (whose bias it reads) is one scalar division per
#: program rather than an int64 division per element.
_BLOCK_COLS = 512

if triton is not None:

    @triton.jit
    def _bias_gelu_kernel(h_ptr, b_ptr, rows_per_branch, row_len, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)  # K * rows passes 2**31 elements at large batches
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < row_len
        branch = row // rows_per_branch
        x = tl.load(h_ptr + row * row_len + cols, mask=mask).to(tl.float32)
        x += tl.load(b_ptr + branch * row_len + cols, mask=mask).to(tl.float32)
        y = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
        tl.store(h_ptr + row * row_len + cols, y.to(h_ptr.dtype.element_ty), mask=mask)


def autograd_records(*tensors: Tensor) -> bool:
    """Whether autograd will record an operation on these tensors (then nothing may
    overwrite what backward needs, and cached derived weights would not get gradients)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def one_pass_available(x: Tensor, *params: Tensor) -> bool:
    """Whether fc1 of input ``x`` and weights ``params`` can use the one-pass kernel:
    CUDA, Triton present, not inside torch.compile, and nothing for autograd to record
    (the in-place pass overwrites the pre-activation that GELU's backward needs)."""
    # Under torch.compile, inductor fuses the bias and GELU into the GEMM's consumer
    # itself; the compiled graph stays free of a hand-written kernel.
    return (triton is not None and x.is_cuda
            and not autograd_records(x, *params)
            and not torch.compiler.is_compiling())


def bias_gelu_(h: Tensor, bias: Tensor) -> Tensor:
    """``h = gelu(h + bias)`` in place, exact GELU, in one Triton kernel.

    ``h``: contiguous ``[K, rows, M]`` with nothing for autograd to record; ``bias``:
    ``[K, M]``. Callers check :func:`one_pass_available` first. Any device Triton runs
    on (with ``TRITON_INTERPRET=1``, CPU tensors through its interpreter: the tests).
    """
    if triton is None:
        raise RuntimeError("bias_gelu_ needs Triton, which is not installed")
    K, _, M = h.shape
    if tuple(bias.shape) != (K, M) or not h.is_contiguous():
        raise ValueError(f"bias_gelu_: needs a contiguous h [K, rows, M] and bias [K, M]; "
                         f"got h {list(h.shape)} (contiguous: {h.is_contiguous()}), "
                         f"bias {list(bias.shape)}")
    rows = h.shape[1]
    if K * rows == 0 or M == 0:
        return h
    grid = (K * rows, triton.cdiv(M, _BLOCK_COLS))
    _bias_gelu_kernel[grid](h, bias.contiguous(), rows, M, BLOCK=_BLOCK_COLS)
    return h
