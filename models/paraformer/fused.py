"""One level of blocks for all K branches at once: the fused and least-work executions.

The same function as :meth:`ParallelBlock.forward_branch` run K times, planned to move
as few bytes and launch as few kernels as the eager operators allow (the counts per
level, before and after this plan, are in :func:`paraformer.analytic.level_traffic`):

* **LayerNorm affine folded into the next GEMM.** ``LN(x) @ W = xhat @ (g * W) + b @ W``
  with ``xhat`` the norm without affine, so every norm is one pass (``F.layer_norm``
  without weights) instead of a norm plus a broadcast ``addcmul`` over ``[K, B, N, D]``.
  The folded weights and their cache are :mod:`paraformer.folds`.
* **The shared first level.** Every branch reads the same ``x0``: the norm runs once
  on ``[B, N, D]``, and q, k and v of all K branches come from one plain GEMM
  ``[B*N, D] @ [D, 3*K*H*dh]`` whose columns are laid out ``(q|k|v, branch, head)``.
  Attention then runs over B sequences of K*H heads, so its launch grid grows with B,
  not K*B (FlashAttention's grid limit of 65535 would otherwise refuse K=48 at batch
  1366 and above). Deeper levels have per-branch inputs and attend over K*B sequences,
  split into chunks below that limit.
* **Bias and residual in the GEMM accumulator**: ``(residual + bias).baddbmm_(x, W)``
  writes each sub-layer's output once. The accumulator is built by the same pass that
  applies the norm's affine (authors' residual) or adds the bias (pre-norm).
* **fc1's bias and GELU in one pass** on CUDA (:mod:`paraformer.epilogue`): ``bmm``
  then one kernel that adds the bias and applies the exact GELU in place, three passes
  over ``[K, B*N, M]`` instead of five.
* **In place where nothing needs the old value**: without autograd GELU overwrites the
  fc1 output instead of allocating another ``[K, B*N, M]`` (on CPU a fresh buffer of
  that size comes from the OS, page faults included, on every forward).
* **On a CPU without autograd, intermediates in kept buffers** (:mod:`paraformer.workspace`):
  x0, the GEMM outputs, the accumulators and (where the attention kernel did not
  write rows) the heads' copy are written with ``out=``
  into buffers the next group and the next call reuse, so the pages stay mapped.
* **Views made once.** The views a level reads its weights through
  (:func:`paraformer.folds.level_weights`) and those it derives from its buffers (k and
  v of the kv GEMM, the accumulators' rows; :meth:`Workspace.views`) are kept per call
  signature: about 2 us each, a dozen a level, which at K 1, batch 1 had made the fused
  execution's Python dearer than the loop's.

A level runs branches ``span`` (all K, or one group of :mod:`paraformer.groups`, which
sizes groups to the cache) with views of the stacked weights: the same plan per group.

``cls_only=True`` is the least-work last level: the head reads only the CLS row of the
branch sum, so keys and values are needed for every token but queries, projection,
residual, LN2 and the FFN only for the CLS row. The output is then ``[K, B, D]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from .epilogue import autograd_records, bias_gelu_, one_pass_available
from .folds import level_weights
from .workspace import kept as _kept

if TYPE_CHECKING:
    from .layers import ParallelBlock
    from .workspace import Workspace

__all__ = ["MAX_ATTENTION_BATCH", "fused_level", "norm_without_affine"]

#: Most sequences handed to one attention call (CUDA's grid y/z limit, 2**16 - 1).
MAX_ATTENTION_BATCH = 65535


def _attention(blk: ParallelBlock, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """SDPA over ``[S, heads, n, dh]`` inputs, in chunks of at most MAX_ATTENTION_BATCH."""
    p = blk.attn_drop_rate if blk.training else 0.0
    S = q.shape[0]
    if S <= MAX_ATTENTION_BATCH:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p)
    parts = [
        F.scaled_dot_product_attention(q[s : s + MAX_ATTENTION_BATCH],
                                       k[s : s + MAX_ATTENTION_BATCH],
                                       v[s : s + MAX_ATTENTION_BATCH], dropout_p=p)
        for s in range(0, S, MAX_ATTENTION_BATCH)
    ]
    return torch.cat(parts)


def _into(ws: Workspace | None, name: str | None, shape: tuple[int, ...],
          like: Tensor) -> Tensor | None:
    """The ``out=`` of an operator: the workspace's buffer ``name``, or None (fresh memory,
    and the only choice where autograd records: it refuses ``out=``)."""
    return None if ws is None or name is None else ws.take(name, shape, like)


def norm_without_affine(x: Tensor, eps: float, ws: Workspace | None) -> Tensor:
    """``LayerNorm(x)`` over the last axis without its affine (folded into the next GEMM).

    With a workspace (a CPU forward without autograd) the kernel is given a weight of
    ones: PyTorch's CPU kernel takes a scalar path when the weight is None, 2.3x slower
    than with one (ViT-S width, 2 threads: 313 against 134 us at 1576 rows, 78 against
    32 us at 197). Elsewhere None, which the CUDA kernel and the compiler handle alike.
    """
    weight = None if ws is None else ws.ones(x.shape[-1], x)
    return F.layer_norm(x, (x.shape[-1],), weight, None, eps)


def _merge_heads(o: Tensor, ws: Workspace | None) -> Tensor:
    """SDPA's output ``[S, heads, n, dh]`` -> contiguous ``[S, n, heads, dh]``: each
    token's heads side by side, the projection's input rows.

    The flash kernels (CPU and CUDA) already write their output in that order and
    return a transposed view of it: then this is a view, no copy. The math kernel's
    output is ``[S, heads, n, dh]`` in memory, and takes one copy.
    """
    S, heads, n, dh = o.shape
    rows = o.transpose(1, 2)
    if ws is None or rows.is_contiguous():
        return rows.contiguous()
    return ws.take("heads", (S, n, heads, dh), o).copy_(rows)


def _attend_shared(blk, w: dict, xhat: Tensor, cls_only: bool, G: int,
                   ws: Workspace | None, c: dict | None) -> Tensor:
    """Shared input ``xhat`` ``[B, N, D]`` -> attention output of a group of G branches
    ``[G, B*n, I]``.

    One GEMM for the queries and one for the keys and values of all K branches (two,
    k and v, for a group of fewer: their columns are not adjacent); the queries of the
    CLS row only with ``cls_only``. (One GEMM for q, k and v measured no faster on a
    CPU, within 1 % at K 1, 12 and batch 1, 8, and writes q's bias over k and v too.)
    """
    K, H, dh = blk.num_branches, blk.num_heads, blk.head_dim
    inner = H * dh
    B, N, D = xhat.shape
    rows = xhat.reshape(B * N, D)
    if G == K:
        kv = _mm(rows, w["kv_w"], w["kv_b"], _into(ws, "kv", (B * N, 2 * K * inner), rows))
        # [B, K*H, N, dh] each
        k, v = _kept(c, "kv", kv, lambda: kv.view(B, N, 2, K * H, dh).permute(2, 0, 3, 1, 4).unbind(0))
    else:
        kb = _mm(rows, w["k_w"], w["k_b"], _into(ws, "k", (B * N, G * inner), rows))
        vb = _mm(rows, w["v_w"], w["v_b"], _into(ws, "v", (B * N, G * inner), rows))
        k = _kept(c, "k", kb, lambda: kb.view(B, N, G * H, dh).transpose(1, 2))
        v = _kept(c, "v", vb, lambda: vb.view(B, N, G * H, dh).transpose(1, 2))
    q_rows = xhat[:, 0] if cls_only else rows
    n = 1 if cls_only else N
    qb = torch.addmm(w["q_b"], q_rows, w["q_w"], out=_into(ws, "q", (B * n, G * inner), rows))
    q = _kept(c, "q", qb, lambda: qb.view(B, n, G * H, dh).transpose(1, 2))
    o = _attention(blk, q, k, v)  # [B, G*H, n, dh]
    # [B, n, G, H*dh] rows, read per branch as a strided [G, B*n, I] view
    return _merge_heads(o, ws).view(B * n, G, H * dh).transpose(0, 1)


def _mm(rows: Tensor, w: Tensor, b: Tensor | None, out: Tensor | None) -> Tensor:
    return torch.mm(rows, w, out=out) if b is None else torch.addmm(b, rows, w, out=out)


def _attend_branches(blk, w: dict, xhat: Tensor, cls_only: bool, G: int,
                     ws: Workspace | None, c: dict | None) -> Tensor:
    """Per-branch input ``xhat`` ``[G, B, N, D]`` -> ``[G, B*n, I]``."""
    H, dh = blk.num_heads, blk.head_dim
    _, B, N, D = xhat.shape
    rows = xhat.reshape(G, B * N, D)
    kv = _into(ws, "kv", (G, B * N, 2 * H * dh), rows)
    kv = (torch.bmm(rows, w["kv_w"], out=kv) if w["kv_b"] is None
          else torch.baddbmm(w["kv_b"], rows, w["kv_w"], out=kv))
    # [G*B, H, N, dh] each
    k, v = _kept(c, "kv", kv, lambda: kv.view(G * B, N, 2, H, dh).permute(2, 0, 3, 1, 4).unbind(0))
    q_rows = xhat[:, :, 0] if cls_only else rows
    n = 1 if cls_only else N
    qb = torch.baddbmm(w["q_b"], q_rows, w["q_w"], out=_into(ws, "q", (G, B * n, H * dh), rows))
    q = _kept(c, "q", qb, lambda: qb.view(G * B, n, H, dh).transpose(1, 2))
    o = _attention(blk, q, k, v)  # [G*B, H, n, dh]
    return _merge_heads(o, ws).view(G, B * n, H * dh)


def _sublayer(blk, norm_w4: Tensor, bias4: Tensor, x: Tensor, xhat: Tensor, y_in: Tensor,
              y_w: Tensor, y_b: Tensor, dropping: bool, out: Tensor | None,
              c: dict | None, name: str) -> Tensor:
    """One sub-layer's output ``[G, B, n, D]``: the residual, plus ``y_in @ y_w`` and its
    bias, in one accumulator written once.

    ``x``, ``xhat``: ``[B, n, D]`` (shared) or ``[G, B, n, D]``; ``y_in``: ``[G, B*n, in]``.
    The accumulator (``out``, a buffer, or fresh memory if None) starts as the residual
    plus ``bias4`` ``[G, 1, 1, D]`` (authors' residual: ``LN(x) = xhat * g + beta``, one
    ``addcmul`` with the norm's weight ``norm_w4``), and the GEMM adds into it. With
    dropout the bias waits: dropout acts on the GEMM's output and its bias together.
    """
    if blk.residual == "prenorm":
        acc = torch.add(x, bias4, out=out)
    else:
        acc = torch.addcmul(bias4, xhat, norm_w4, out=out)
    G, D = acc.shape[0], acc.shape[-1]
    rows = _kept(c, name, acc, lambda: acc.view(G, -1, D))
    if dropping:
        y = torch.baddbmm(y_b.unsqueeze(1), y_in, y_w)
        return (rows + F.dropout(y, blk.drop_rate, True)).view(acc.shape)
    rows.baddbmm_(y_in, y_w)
    return acc


def fused_level(blk: ParallelBlock, x: Tensor, cls_only: bool = False,
                span: tuple[int, int] | None = None, xhat: Tensor | None = None,
                ws: Workspace | None = None, out: str | None = None) -> Tensor:
    """Branches ``span`` (``(k0, k1)``, default all K) of one level, as one group.

    ``x``: ``[G, B, N, D]``, or the shared ``[B, N, D]`` input of the first level, whose
    norm ``xhat`` (no affine) a caller running several groups passes so it is made once.
    Returns ``[G, B, N, D]``, or with ``cls_only`` the CLS rows ``[G, B, D]``.

    With a workspace ``ws`` (:mod:`paraformer.workspace`) the intermediates go into its
    buffers, and the output into its buffer ``out`` when one is named (fresh otherwise:
    what a caller keeps must not be overwritten by the next call). ``x`` must not be
    the buffer ``out``.
    """
    D = blk.dim
    span = span or (0, blk.num_branches)
    G = span[1] - span[0]
    shared = x.dim() == 3
    B, N = x.shape[-3], x.shape[-2]
    dropping = blk.training and blk.drop_rate > 0.0
    w = level_weights(blk, shared, span, dropping)
    # views of this call's buffers, the same on every call with this signature
    c = None if ws is None else ws.views((blk, shared, span, cls_only, B, N, x.dtype, out))
    modules = blk._modules

    if xhat is None:
        xhat = norm_without_affine(x, modules["norm1"].eps, ws)
    attend = _attend_shared if shared else _attend_branches
    o = attend(blk, w, xhat, cls_only, G, ws, c)  # [G, B*n, I]
    if cls_only:
        x, xhat = x[..., 0:1, :], xhat[..., 0:1, :]
    n = x.shape[-2]
    x = _sublayer(blk, w["n1_w4"], w["proj_acc"], x, xhat, o, w["proj_w"], w["proj_b"],
                  dropping, _into(ws, "mid", (G, B, n, D), x), c, "mid")

    xhat = norm_without_affine(x, modules["norm2"].eps, ws)
    rows = xhat.view(G, B * n, D)
    M = w["fc1_w"].shape[-1]
    # bias + GELU: one kernel after bmm, unless this model runs "fused-2pass"
    if blk.one_pass_epilogue and one_pass_available(rows, w["fc1_w"], w["fc1_b"]):
        h = bias_gelu_(torch.bmm(rows, w["fc1_w"]), w["fc1_b"])
    else:
        h = torch.baddbmm(w["fc1_b3"], rows, w["fc1_w"],
                          out=_into(ws, "ffn", (G, B * n, M), rows))
        h = F.gelu(h) if autograd_records(h) else torch._C._nn.gelu_(h)
    if dropping:
        h = F.dropout(h, blk.drop_rate, True)
    # the output's views are kept only where it is a buffer (with dropout it is a sum)
    kept = None if out is None or dropping else c
    x = _sublayer(blk, w["n2_w4"], w["fc2_acc"], x, xhat, h, w["fc2_w"], w["fc2_b"],
                  dropping, _into(ws, out, (G, B, n, D), x), kept, "out")
    return _kept(kept, "out-cls", x, lambda: x.view(G, B, D)) if cls_only else x
