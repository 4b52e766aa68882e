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
from .folds import folded

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


def _attend_shared(blk, f, xhat: Tensor, cls_only: bool, span: tuple[int, int],
                   ws: Workspace | None = None) -> Tensor:
    """Shared input ``xhat`` ``[B, N, D]`` -> attention output of branches ``span``
    ``[G, B*n, I]``.

    One GEMM for the queries and one for the keys and values of all K branches (two,
    k and v, for a group of fewer: their columns are not adjacent); the queries of the
    CLS row only with ``cls_only``. (One GEMM for q, k and v measured no faster on a
    CPU, within 1 % at K 1, 12 and batch 1, 8, and writes q's bias over k and v too.)
    """
    K, H, dh = blk.num_branches, blk.num_heads, blk.head_dim
    (k0, k1), inner = span, blk.num_heads * blk.head_dim
    G = k1 - k0
    B, N, D = xhat.shape
    rows = xhat.reshape(B * N, D)
    if G == K:
        kv = _mm(rows, f["kv_w"], f["kv_b"], _into(ws, "kv", (B * N, 2 * K * inner), rows))
        k, v = kv.view(B, N, 2, K * H, dh).permute(2, 0, 3, 1, 4).unbind(0)  # [B, K*H, N, dh]
    else:
        k, v = (_mm(rows, f["kv_w"][:, c + k0 * inner : c + k1 * inner],
                    None if f["kv_b"] is None else f["kv_b"][c + k0 * inner : c + k1 * inner],
                    _into(ws, name, (B * N, G * inner), rows))
                .view(B, N, G * H, dh).transpose(1, 2)
                for c, name in ((0, "k"), (K * inner, "v")))
    q_rows = xhat[:, 0] if cls_only else rows
    n = 1 if cls_only else N
    q = torch.addmm(f["q_b"], q_rows, f["q_w"], out=_into(ws, "q", (B * n, G * inner), rows))
    o = _attention(blk, q.view(B, n, G * H, dh).transpose(1, 2), k, v)  # [B, G*H, n, dh]
    # [B, n, G, H*dh] rows, read per branch as a strided [G, B*n, I] view
    return _merge_heads(o, ws).view(B * n, G, H * dh).transpose(0, 1)


def _mm(rows: Tensor, w: Tensor, b: Tensor | None, out: Tensor | None) -> Tensor:
    return torch.mm(rows, w, out=out) if b is None else torch.addmm(b, rows, w, out=out)


def _attend_branches(blk, f, xhat: Tensor, cls_only: bool, span: tuple[int, int],
                     ws: Workspace | None = None) -> Tensor:
    """Per-branch input ``xhat`` ``[G, B, N, D]`` (branches ``span``) -> ``[G, B*n, I]``."""
    H, dh = blk.num_heads, blk.head_dim
    K, B, N, D = xhat.shape  # K: the branches of this group
    rows = xhat.reshape(K, B * N, D)
    kv = _into(ws, "kv", (K, B * N, 2 * H * dh), rows)
    kv = (torch.bmm(rows, f["kv_w"], out=kv) if f["kv_b"] is None
          else torch.baddbmm(f["kv_b"], rows, f["kv_w"], out=kv))
    k, v = kv.view(K * B, N, 2, H, dh).permute(2, 0, 3, 1, 4).unbind(0)  # [K*B, H, N, dh]
    q_rows = xhat[:, :, 0] if cls_only else rows
    n = 1 if cls_only else N
    q = torch.baddbmm(f["q_b"], q_rows, f["q_w"], out=_into(ws, "q", (K, B * n, H * dh), rows))
    o = _attention(blk, q.view(K * B, n, H, dh).transpose(1, 2), k, v)  # [K*B, H, n, dh]
    return _merge_heads(o, ws).view(K, B * n, H * dh)


def _base(blk, norm_w: Tensor, x: Tensor, xhat: Tensor, bias: Tensor,
          out: Tensor | None) -> Tensor:
    """The accumulator a projection adds into: the residual plus ``bias`` ``[G, D]``.

    ``x`` and ``xhat`` are ``[B, n, D]`` (shared) or ``[G, B, n, D]``; written into
    ``out`` ``[G, B, n, D]`` (fresh memory if None), returned as ``[G, B*n, D]``.
    Authors' residual: ``LN(x) = xhat * g + beta``, one ``addcmul`` with the norm's
    weight ``norm_w`` ``[G, D]``.
    """
    G, D = bias.shape
    shape = (G, 1, 1, D)
    if blk.residual == "prenorm":
        out = torch.add(x, bias.view(shape), out=out)
    else:
        out = torch.addcmul(bias.view(shape), xhat, norm_w.view(shape), out=out)
    return out.view(G, -1, D)


def _project(blk, w: Tensor, b: Tensor, base: Tensor, x: Tensor) -> Tensor:
    """``base + dropout(x @ w + b)`` per branch, ``base`` holding the bias unless dropping."""
    if blk.training and blk.drop_rate > 0.0:
        y = torch.baddbmm(b.unsqueeze(1), x, w)
        return base + F.dropout(y, blk.drop_rate, True)
    return base.baddbmm_(x, w)


#: Entries of the folded weights (and parameters) with a leading branch axis
_PER_BRANCH = ("fc1_w", "fc1_b", "proj_base", "proj_base_unbiased", "fc2_base",
               "fc2_base_unbiased", "n1_w", "n2_w", "proj_w", "proj_b", "fc2_w", "fc2_b")


def _group_view(blk, f: dict, shared: bool, span: tuple[int, int]) -> dict:
    """The folded weights and the parameters the level reads, for branches ``span``:
    views (no copy). The shared level's q columns are ordered (branch, head), so a
    group's are one slice; its k and v are sliced in :func:`_attend_shared`."""
    m = blk._modules
    n1, n2 = m["norm1"]._parameters, m["norm2"]._parameters
    proj, fc2 = m["proj"]._parameters, m["fc2"]._parameters
    out = {**f, "n1_w": n1["weight"], "n2_w": n2["weight"], "proj_w": proj["weight"],
           "proj_b": proj["bias"], "fc2_w": fc2["weight"], "fc2_b": fc2["bias"]}
    k0, k1 = span
    if k1 - k0 == blk.num_branches:  # all of them: the tensors as they are
        return out
    for name in _PER_BRANCH + (() if shared else ("q_w", "q_b", "kv_w", "kv_b")):
        if out[name] is not None:
            out[name] = out[name][k0:k1]
    if shared:
        inner = blk.num_heads * blk.head_dim
        out["q_w"] = f["q_w"][:, k0 * inner : k1 * inner]
        out["q_b"] = f["q_b"][k0 * inner : k1 * inner]
    return out


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
    f = _group_view(blk, folded(blk, shared), shared, span)

    if xhat is None:
        xhat = norm_without_affine(x, blk.norm1.eps, ws)
    attend = _attend_shared if shared else _attend_branches
    o = attend(blk, f, xhat, cls_only, span, ws)  # [G, B*n, I]
    if cls_only:
        x, xhat = x[..., 0:1, :], xhat[..., 0:1, :]
    n = x.shape[-2]
    bias = f["proj_base_unbiased"] if dropping else f["proj_base"]
    acc = _base(blk, f["n1_w"], x, xhat, bias, _into(ws, "mid", (G, B, n, D), x))
    x = _project(blk, f["proj_w"], f["proj_b"], acc, o).view(G, B, n, D)

    xhat = norm_without_affine(x, blk.norm2.eps, ws)
    rows = xhat.view(G, B * n, D)
    M = f["fc1_w"].shape[-1]
    # bias + GELU: one kernel after bmm, unless this model runs "fused-2pass"
    if blk.one_pass_epilogue and one_pass_available(rows, f["fc1_w"], f["fc1_b"]):
        h = bias_gelu_(torch.bmm(rows, f["fc1_w"]), f["fc1_b"])
    else:
        h = torch.baddbmm(f["fc1_b"].unsqueeze(1), rows, f["fc1_w"],
                          out=_into(ws, "ffn", (G, B * n, M), rows))
        h = F.gelu(h) if autograd_records(h) else torch._C._nn.gelu_(h)
    if dropping:
        h = F.dropout(h, blk.drop_rate, True)
    bias = f["fc2_base_unbiased"] if dropping else f["fc2_base"]
    acc = _base(blk, f["n2_w"], x, xhat, bias, _into(ws, out, (G, B, n, D), x))
    x = _project(blk, f["fc2_w"], f["fc2_b"], acc, h)
    return x.view(G, B, D) if cls_only else x.view(G, B, N, D)
