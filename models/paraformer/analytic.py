"""Closed-form parameter and FLOP counts for Para-Former (and serial ViTs).

FLOPs count every matrix multiplication of a forward pass as ``2*M*N*K`` (one
multiply and one add per term), which is what
``torch.utils.flop_counter.FlopCounterMode`` reports when attention runs with
the math backend (``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``).
Normalisations, softmax, GELU, additions and the branch sum are not counted.

:func:`param_count` and :func:`paraformer_flops` take a
:class:`~paraformer.shape.ParaFormerShape` or its fields as keyword arguments (the
authors' defaults for the rest). Other keyword arguments (``residual``, ``pool``,
dropout rates, ...) are accepted and ignored because they change neither count, so
``param_count(**model.config)`` works. The one exception is
``execution="least-work"``, which does less work for the same output: its FLOPs are
:func:`least_work_block_flops` in each branch's last block.
"""

from __future__ import annotations

from typing import Any

from .shape import ParaFormerShape

__all__ = [
    "block_param_count",
    "least_work_block_flops",
    "level_traffic",
    "paraformer_flops",
    "param_count",
    "transformer_matmul_flops",
]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def block_param_count(
    dim: int, num_heads: int, head_dim: int, mlp_dim: int, qkv_bias: bool = False
) -> int:
    """Parameters of one transformer block: 2 LayerNorms, qkv, proj (+bias), fc1, fc2."""
    inner = num_heads * head_dim
    norms = 2 * 2 * dim
    attn = dim * 3 * inner + (3 * inner if qkv_bias else 0) + inner * dim + dim
    ffn = dim * mlp_dim + mlp_dim + mlp_dim * dim + dim
    return norms + attn + ffn


def param_count(shape: ParaFormerShape | None = None, /, **config: Any) -> int:
    """Exact ``sum(p.numel() for p in ParaFormer(...).parameters())``.

    = patch embed (P*D + D) + CLS (D) + positions ((N+1)*D)
      + K * depth * block + head LayerNorm (2D) + classifier (D*C + C).
    """
    s = ParaFormerShape.of(shape, **config)
    (ih, iw), (ph, pw) = _pair(s.img_size), _pair(s.patch_size)
    D, C = s.embed_dim, s.num_classes
    num_patches = (ih // ph) * (iw // pw)
    patch_dim = ph * pw * s.in_chans
    embed = patch_dim * D + D + D + (num_patches + 1) * D
    blocks = s.num_branches * s.branch_depth * block_param_count(
        D, s.num_heads, s.head_dim, s.mlp_dim)
    head = 2 * D + (D * C + C if C else 0)
    return embed + blocks + head


def transformer_matmul_flops(
    num_tokens: int,
    dim: int,
    num_heads: int,
    head_dim: int,
    mlp_dim: int,
    num_blocks: int,
    patch_dim: int,
    num_classes: int,
    num_prefix_tokens: int = 1,
) -> int:
    """Forward matmul FLOPs per image of a ViT-style transformer (2*M*N*K per matmul).

    Args:
        num_tokens: sequence length T seen by the blocks (patches + prefix tokens).
        dim: width D.
        num_heads, head_dim: H and dh (attention inner width H*dh).
        mlp_dim: FFN hidden width M.
        num_blocks: transformer blocks executed (K*branch_depth for Para-Former,
            depth for a serial ViT).
        patch_dim: input features of one patch (p*p*C); the embedding is applied
            to the ``num_tokens - num_prefix_tokens`` patches only.
        num_classes: classifier outputs (0: no classifier).
        num_prefix_tokens: tokens not produced by the patch embedding (CLS: 1).

    Per block: qkv 2*T*D*3*H*dh, Q K^T 2*H*T*T*dh, attn V 2*H*T*T*dh,
    proj 2*T*H*dh*D, fc1 2*T*D*M, fc2 2*T*M*D. Plus patch embedding
    2*(T - prefix)*patch_dim*D and head 2*D*classes.
    """
    T, D, inner = num_tokens, dim, num_heads * head_dim
    per_block = (
        2 * T * D * 3 * inner  # qkv
        + 2 * 2 * num_heads * T * T * head_dim  # Q K^T and attn @ V
        + 2 * T * inner * D  # output projection
        + 2 * 2 * T * D * mlp_dim  # fc1 and fc2
    )
    embed = 2 * (T - num_prefix_tokens) * patch_dim * D
    head = 2 * D * num_classes
    return embed + num_blocks * per_block + head


def least_work_block_flops(
    num_tokens: int, dim: int, num_heads: int, head_dim: int, mlp_dim: int
) -> int:
    """Forward matmul FLOPs per image of a last block that only feeds the CLS row.

    Keys and values for all T tokens (2*T*D*2*H*dh); the query, attention, projection
    and FFN for one row: 2*D*H*dh + 2*2*H*T*dh + 2*H*dh*D + 2*2*D*M. At ViT-S width
    (T 197, D 384, H 6, dh 64, M 1536) that is 119.5 MFLOP against 757 for a full block.
    """
    T, D, inner = num_tokens, dim, num_heads * head_dim
    return (
        2 * T * D * 2 * inner  # k and v, every token
        + 2 * D * inner  # q, CLS row
        + 2 * 2 * num_heads * T * head_dim  # q k^T and attn @ v, one query
        + 2 * inner * D  # output projection, CLS row
        + 2 * 2 * D * mlp_dim  # fc1 and fc2, CLS row
    )


def paraformer_flops(
    shape: ParaFormerShape | None = None, /, execution: str = "fused", **config: Any
) -> int:
    """Forward matmul FLOPs per image of ParaFormer(...).

    loop and fused: :func:`transformer_matmul_flops` with ``num_blocks = num_branches *
    branch_depth`` (the same as a serial ViT of depth K*branch_depth and equal width).
    least-work: each branch's last block costs :func:`least_work_block_flops` instead.
    """
    s = ParaFormerShape.of(shape, **config)
    (ih, iw), (ph, pw) = _pair(s.img_size), _pair(s.patch_size)
    tokens = (ih // ph) * (iw // pw) + 1
    width = (s.embed_dim, s.num_heads, s.head_dim, s.mlp_dim)
    full = transformer_matmul_flops(
        tokens, *width,
        num_blocks=s.num_branches * s.branch_depth,
        patch_dim=ph * pw * s.in_chans,
        num_classes=s.num_classes,
    )
    if execution != "least-work":
        return full
    one_block = transformer_matmul_flops(tokens, *width, 1, 0, 0)
    last = least_work_block_flops(tokens, *width)
    return full - s.num_branches * (one_block - last)


def _register_inplace_baddbmm_flops() -> None:
    """Teach FlopCounterMode to count the in-place ``aten.baddbmm_``.

    The fused execution folds bias + residual into the GEMM accumulator with
    ``Tensor.baddbmm_``; torch's FlopCounterMode counts ``aten.baddbmm`` but not
    its in-place form, which would hide the proj and fc2 FLOPs. Registers the
    same 2*b*m*n*k formula once (no-op if torch already has one).
    """
    import torch
    from torch.utils import flop_counter

    target = torch.ops.aten.baddbmm_
    if target in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(target)
    def _baddbmm_inplace_flop(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs):
        b, m, k = a_shape
        b2, k2, n = b_shape
        assert b == b2 and k == k2
        return 2 * b * m * n * k


_register_inplace_baddbmm_flops()


def level_traffic(
    plan: str,
    num_branches: int,
    batch: int,
    num_tokens: int,
    dim: int,
    num_heads: int,
    head_dim: int,
    mlp_dim: int,
    shared: bool = True,
    bytes_per_element: int = 4,
) -> list[tuple[str, int, int]]:
    """Kernels of one fused inference level and the bytes each reads and writes.

    ``plan``: ``"before"`` (the fused execution up to this version: norm, then a
    broadcast ``addcmul`` of the affine over ``[K, B, N, D]``, per-branch qkv over K
    copies of a shared input, bias copied into the residual in its own pass) or
    ``"after"`` (:mod:`paraformer.fused` on CPU: affine folded into cached weights, q and
    k|v GEMMs over all K at once for a shared input, accumulators built in the pass
    that applies the affine) or ``"cuda"`` (the same on CUDA, where fc1 is a plain
    ``bmm`` followed by one pass that adds the bias and applies GELU,
    :mod:`paraformer.epilogue`).
    ``shared``: the first level, whose input every branch shares.

    Returns ``(kernel, bytes read, bytes written)``, authors' residual, no dropout. A
    GEMM with a broadcast bias counts as two kernels (bias copy into the output, GEMM
    with beta 1), which is what CPU BLAS and cuBLAS without an epilogue do. Attention
    reads q, k, v once and writes its output once (a flash kernel's ideal); weights are
    read once per GEMM. An estimate from shapes, not a measurement.
    """
    if plan not in ("before", "after", "cuda"):
        raise ValueError(f"plan must be 'before', 'after' or 'cuda', got {plan!r}")
    K, e = num_branches, bytes_per_element
    R, D, M, inner = batch * num_tokens, dim, mlp_dim, num_heads * head_dim
    x_in = R * D if shared else K * R * D  # elements of the level's input
    act, qkv, hid = K * R * D, K * R * 3 * inner, K * R * M
    out: list[tuple[str, int, int]] = []

    def k(name: str, read: int, write: int) -> None:
        out.append((name, read * e, write * e))

    k("layer_norm 1 (no affine)", x_in, x_in)
    if plan == "before":
        k("addcmul: LN1 affine, K branches", x_in, act)
        k("qkv bmm", act + K * D * 3 * inner, qkv)
    else:  # the norm's shift survives as q's bias only (see paraformer.folds._compute_folds)
        one = ", one GEMM for all K)" if shared else ")"
        q, kv = qkv // 3, qkv - qkv // 3
        k("q bias copy", 0, q)
        k("q GEMM (affine folded" + one, x_in + K * D * inner + q, q)
        k("kv GEMM (affine folded, no bias" + one, x_in + K * D * 2 * inner, kv)
    k("attention", qkv, K * R * inner)
    if plan == "before":  # (flash kernels, CPU and CUDA, write rows: the plan reads them)
        k("attention output to rows (copy)", K * R * inner, K * R * inner)
        k("residual + proj bias", act, act)
    else:
        k("addcmul: LN1 affine + proj bias = accumulator", x_in, act)
    k("proj GEMM into accumulator (beta 1)", K * R * inner + K * inner * D + act, act)
    k("layer_norm 2 (no affine)", act, act)
    if plan == "before":
        k("addcmul: LN2 affine", act, act)
    if plan == "cuda":
        k("fc1 GEMM (affine folded, no bias)", act + K * D * M, hid)
        k("bias + GELU, one pass in place", hid + K * M, hid)
    else:
        k("fc1 bias copy", 0, hid)
        k("fc1 GEMM" + (" (affine folded)" if plan == "after" else ""), act + K * D * M + hid, hid)
        k("GELU" + (" in place" if plan == "after" else ""), hid, hid)
    if plan == "before":
        k("residual + fc2 bias", act, act)
    else:
        k("addcmul: LN2 affine + fc2 bias = accumulator", act, act)
    k("fc2 GEMM into accumulator (beta 1)", hid + K * M * D + act, act)
    return out
