"""Branch-stacked building blocks of Para-Former.

Every learnable tensor of a branch layer is stored *once*, stacked on a leading
axis of length K (the number of branches). Every execution reads the same
tensors:

* the fused and least-work executions (:mod:`paraformer.fused`) treat the K axis
  as a batch axis (``torch.bmm`` / ``torch.baddbmm`` on
  ``[K, B*N, D_in] @ [K, D_in, D_out]``, or one plain GEMM over all K for the
  shared first level) and run all branches in one pass whose number of
  operators does not depend on K;
* the loop execution selects slice ``k`` (a view, no copy) and runs the
  branches one after another, as the authors do on a single device.

Linear weights are laid out for ``x @ W`` (``[K, in, out]``), not in
``nn.Linear``'s ``[out, in]`` layout, so that no transpose is needed on either
path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fused import fused_level

__all__ = ["ParallelBlock", "StackedLayerNorm", "StackedLinear"]


class StackedLinear(nn.Module):
    """K independent affine maps ``x @ weight[k] + bias[k]``.

    Parameters: ``weight`` of shape ``[K, in_features, out_features]`` and, if
    ``bias``, ``bias`` of shape ``[K, out_features]``.
    """

    def __init__(
        self,
        num_branches: int,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.num_branches = num_branches
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(num_branches, in_features, out_features, **fk))
        if bias:
            self.bias = nn.Parameter(torch.empty(num_branches, out_features, **fk))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.weight, std=0.02)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def branch(self, x: Tensor, k: int) -> Tensor:
        """Branch ``k`` only: ``x`` is ``[rows, in]``, returns ``[rows, out]``."""
        if self.bias is None:
            return torch.mm(x, self.weight[k])
        return torch.addmm(self.bias[k], x, self.weight[k])

    def extra_repr(self) -> str:
        return (
            f"num_branches={self.num_branches}, in_features={self.in_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


class StackedLayerNorm(nn.Module):
    """K LayerNorms over the last axis, with per-branch ``weight``/``bias`` ``[K, D]``."""

    def __init__(self, num_branches: int, dim: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.num_branches = num_branches
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_branches, dim, **fk))
        self.bias = nn.Parameter(torch.zeros(num_branches, dim, **fk))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def branch(self, x: Tensor, k: int) -> Tensor:
        return F.layer_norm(x, (self.dim,), self.weight[k], self.bias[k], self.eps)

    def extra_repr(self) -> str:
        return f"num_branches={self.num_branches}, dim={self.dim}, eps={self.eps}"


class ParallelBlock(nn.Module):
    """One transformer block for each of K branches (the blocks at one depth level).

    Sub-layers, with ``LN`` the branch's LayerNorm::

        residual="authors":  x = Attn(LN1(x)) + LN1(x);  x = FFN(LN2(x)) + LN2(x)
        residual="prenorm":  x = x + Attn(LN1(x));        x = x + FFN(LN2(x))

    The "authors" form reproduces the public Para-Former code, where the norm
    wraps a module that adds its own input, ``PreNorm(Residual(f))``, so the
    residual stream carries the *normalised* input. "prenorm" is the standard
    pre-norm transformer residual.

    Attention: ``qkv`` without bias (D -> 3*H*dh), scale dh**-0.5, softmax,
    ``proj`` with bias (H*dh -> D), dropout. FFN: D -> M, GELU, dropout,
    M -> D, dropout.
    """

    def __init__(
        self,
        num_branches: int,
        dim: int,
        num_heads: int,
        head_dim: int,
        mlp_dim: int,
        residual: str = "authors",
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        K = num_branches
        inner = num_heads * head_dim
        self.num_branches = K
        #: fc1's bias + GELU in one kernel on CUDA; the model's "fused-2pass" sets it off
        self.one_pass_epilogue = True
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.residual = residual
        self.drop_rate = drop_rate
        self.attn_drop_rate = attn_drop_rate
        self.norm1 = StackedLayerNorm(K, dim, **fk)
        self.qkv = StackedLinear(K, dim, 3 * inner, bias=False, **fk)
        self.proj = StackedLinear(K, inner, dim, **fk)
        self.norm2 = StackedLayerNorm(K, dim, **fk)
        self.fc1 = StackedLinear(K, dim, mlp_dim, **fk)
        self.fc2 = StackedLinear(K, mlp_dim, dim, **fk)
        # (layout, parameter key, folded weights, their views shaped per group), kept by
        # the fused execution for inference (paraformer.folds)
        self._fold_cache = None

    def __getstate__(self) -> dict:
        """Pickles and deep copies leave the fold cache behind: the copy's parameters are
        other tensors, so it would be made again anyway, and its shaped views of the
        parameters, made under inference_mode, cannot be copied once a parameter was
        updated outside it."""
        state = super().__getstate__()
        state["_fold_cache"] = None
        return state

    def _drop(self, x: Tensor) -> Tensor:
        if self.training and self.drop_rate > 0.0:
            return F.dropout(x, self.drop_rate, True)
        return x

    def _attend(self, qkv: Tensor, batch: int, tokens: int) -> Tensor:
        """``qkv``: ``[batch*tokens, 3*H*dh]`` rows; returns ``[batch, H, tokens, dh]``.

        q, k and v are strided views of the projection output (no copy).
        """
        q, k, v = (
            qkv.view(batch, tokens, 3, self.num_heads, self.head_dim)
            .permute(2, 0, 3, 1, 4)
            .unbind(0)
        )
        p = self.attn_drop_rate if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p)

    # -- fused: all K branches in one pass -------------------------------------------------
    def forward_fused(self, x: Tensor, cls_only: bool = False) -> Tensor:
        """``x``: ``[K, B, N, D]``, or the shared ``[B, N, D]`` input of the first block.

        Returns ``[K, B, N, D]`` (with ``cls_only``: the CLS rows ``[K, B, D]``, for the
        least-work execution's last level). The operator count is independent of K;
        the plan is in :mod:`paraformer.fused`.
        """
        return fused_level(self, x, cls_only)

    # -- loop: branch k alone ---------------------------------------------------------------
    def forward_branch(self, x: Tensor, k: int) -> Tensor:
        """Branch ``k`` of this level: ``x`` ``[B, N, D]`` -> ``[B, N, D]``."""
        B, N, D = x.shape
        prenorm = self.residual == "prenorm"

        h = self.norm1.branch(x, k)
        qkv = self.qkv.branch(h.reshape(B * N, D), k)
        o = self._attend(qkv, B, N)
        o = o.transpose(1, 2).reshape(B * N, self.num_heads * self.head_dim)
        o = self._drop(self.proj.branch(o, k)).view(B, N, D)
        x = (x + o) if prenorm else (h + o)

        h = self.norm2.branch(x, k)
        f = F.gelu(self.fc1.branch(h.reshape(B * N, D), k))
        f = self._drop(self.fc2.branch(self._drop(f), k)).view(B, N, D)
        return (x + f) if prenorm else (h + f)

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, residual={self.residual!r}, "
            f"drop_rate={self.drop_rate}, attn_drop_rate={self.attn_drop_rate}"
        )
