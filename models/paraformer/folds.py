"""The folded weights of a fused level, and the cache that keeps them for inference.

``LN(x) @ W = xhat @ (g * W) + b @ W`` with ``xhat`` the norm without affine: the
fused levels (:mod:`paraformer.fused`) multiply ``xhat`` by weights with the norm's
scale folded in, and add its shift as a bias. The folded weights depend on the
parameters only: outside autograd they are kept until a parameter changes (its version
counter or storage moves), so an inference forward pays nothing for them, in eager
mode, in a CUDA graph and under torch.compile alike; with autograd they are recomputed
each forward and the gradients flow to the original parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .epilogue import autograd_records

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .layers import ParallelBlock, StackedLayerNorm, StackedLinear

__all__ = ["folded", "level_weights", "refresh_folds"]


def _fold(norm: StackedLayerNorm, lin: StackedLinear) -> tuple[Tensor, Tensor]:
    """``LN(x) @ W + c == xhat @ w + b``: returns ``w`` ``[K, D, out]`` and ``b`` ``[K, out]``.

    ``b @ W`` is written as a product and a sum so that FLOP counters, which count
    matrix products only, see the same work as the formula (a per-model constant, not
    per image; with the cache it is paid once).
    """
    w = lin.weight * norm.weight.unsqueeze(-1)
    b = (lin.weight * norm.bias.unsqueeze(-1)).sum(1)
    return w, (b + lin.bias if lin.bias is not None else b)


def _shared_layout(w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Per-branch qkv ``[K, D, 3*I]``, ``[K, 3*I]`` -> one ``[D, 3*K*I]``, ``[3*K*I]``
    with columns ordered (q|k|v, branch, head, dh): q of all branches is one block of
    K*H heads."""
    K, D, three_i = w.shape
    i = three_i // 3
    w = w.view(K, D, 3, i).permute(1, 2, 0, 3).reshape(D, 3 * K * i)
    b = b.view(K, 3, i).transpose(0, 1).reshape(3 * K * i)
    return w, b


def _fold_params(blk: ParallelBlock) -> tuple[Tensor, ...]:
    """The parameters a fused level reads: those the folded weights are made from, and
    fc2's weight, which the level reads as it is (:func:`level_weights` keeps views of
    it, so a replaced fc2 weight must move the cache's key too).

    Read from the modules' parameter dicts, not through ``nn.Module.__getattr__``: that
    costs about 1.4 us a lookup, 28 us per level on every forward (measured), which a
    48-level serial twin would pay in Python before any kernel runs.
    """
    m = blk._modules
    n1, qkv, proj = m["norm1"]._parameters, m["qkv"]._parameters, m["proj"]._parameters
    n2, fc1, fc2 = m["norm2"]._parameters, m["fc1"]._parameters, m["fc2"]._parameters
    return (n1["weight"], n1["bias"], qkv["weight"], proj["weight"], proj["bias"],
            n2["weight"], n2["bias"], fc1["weight"], fc1["bias"], fc2["weight"], fc2["bias"])


def folded(blk: ParallelBlock, shared: bool,
            params: tuple[Tensor, ...] | None = None) -> dict[str, Tensor | None]:
    """The folded weights and accumulator biases of this level, from the cache when
    autograd does not need them.

    The cache is keyed on the parameters' storage, version and dtype, and brought up to
    date in place (the same tensors with new values), so a CUDA graph captured on it and
    a compiled graph reading it stay valid when the parameters change. Inside
    torch.compile the key cannot be checked (Dynamo cannot compare data pointers), so
    the model calls :func:`refresh_folds` eagerly before its compiled levels run, and
    the graphs read the cache without recomputing the fold on every call.
    """
    params = params or _fold_params(blk)
    keep_kv_bias = blk.training and blk.attn_drop_rate > 0.0
    if autograd_records(*params):
        return _compute_folds(blk, shared, keep_kv_bias)
    # (layout, parameter key, tensors): Dynamo reads the layout only, so its guards do
    # not hold the parameters' versions (a guard on them would recompile on each update)
    layout, cache = (shared, keep_kv_bias), blk._fold_cache
    if torch.compiler.is_compiling():
        if cache is not None and cache[0] == layout:
            return cache[2]
        return _compute_folds(blk, shared, keep_kv_bias)
    if (cache is not None and torch.is_grad_enabled()
            and _made_in_inference_mode(cache[2].values())):
        cache = None  # autograd may record the input (a saliency map): it cannot save these
    if _made_in_inference_mode(params):
        # made under inference_mode, they have no version counter to key on: such a
        # model (built inside the mode) folds on every call, as the embedding's kernel does
        return _compute_folds(blk, shared, keep_kv_bias)
    key = tuple((p.data_ptr(), p._version, p.dtype) for p in params)
    if cache is not None and cache[0] == layout and cache[1] == key:
        return cache[2]
    out = _compute_folds(blk, shared, keep_kv_bias)
    if cache is not None and cache[0] == layout and _same_layout(cache[2], out):
        with torch.inference_mode():  # also where the cache was made under inference mode
            for name, t in cache[2].items():
                if t is not None:
                    t.copy_(out[name])
        out = cache[2]
    else:  # owned tensors only: an entry that aliased a parameter would be written into it
        out = {name: (t.clone() if isinstance(t, nn.Parameter) else t) for name, t in out.items()}
    # a new key also drops the level's shaped views (level_weights): a replaced
    # parameter's views would still read the old tensor
    blk._fold_cache = (layout, key, out, {})
    return out


def level_weights(blk: ParallelBlock, shared: bool, span: tuple[int, int],
                  dropping: bool) -> dict[str, Tensor | None]:
    """The weights one fused level reads for branches ``span``, as views shaped for its
    operators (no copy): the folded weights of :func:`folded` and the parameters read
    as they are.

    Where the fold cache serves (inference, eager) the views are kept beside it until
    its key moves: a dozen view operators a level, about 2 us each, that the fused
    execution at K 1, batch 1 would otherwise pay on every call where the loop pays none.
    """
    f = folded(blk, shared)
    cache = blk._fold_cache
    if cache is None or cache[2] is not f or torch.compiler.is_compiling():
        return _shaped(blk, f, shared, span, dropping)
    key = (shared, span, dropping)
    views = cache[3].get(key)
    if views is None:
        views = cache[3][key] = _shaped(blk, f, shared, span, dropping)
    return views


#: Entries of the folded weights (and parameters) with a leading branch axis
_PER_BRANCH = ("fc1_w", "fc1_b", "proj_base", "proj_base_unbiased", "fc2_base",
               "fc2_base_unbiased", "n1_w", "n2_w", "proj_w", "proj_b", "fc2_w", "fc2_b")


def _shaped(blk: ParallelBlock, f: dict, shared: bool, span: tuple[int, int],
            dropping: bool) -> dict[str, Tensor | None]:
    """:func:`level_weights` without the cache. The shared level's q columns are ordered
    (branch, head), so a group's are one slice; its k and v columns are two (one each).
    """
    m = blk._modules
    n1, n2 = m["norm1"]._parameters, m["norm2"]._parameters
    proj, fc2 = m["proj"]._parameters, m["fc2"]._parameters
    out = {**f, "n1_w": n1["weight"], "n2_w": n2["weight"], "proj_w": proj["weight"],
           "proj_b": proj["bias"], "fc2_w": fc2["weight"], "fc2_b": fc2["bias"]}
    k0, k1 = span
    G, K = k1 - k0, blk.num_branches
    if G != K:
        for name in _PER_BRANCH + (() if shared else ("q_w", "q_b", "kv_w", "kv_b")):
            if out[name] is not None:
                out[name] = out[name][k0:k1]
    inner = blk.num_heads * blk.head_dim
    if shared and G != K:
        out["q_w"] = f["q_w"][:, k0 * inner : k1 * inner]
        out["q_b"] = f["q_b"][k0 * inner : k1 * inner]
        kv_w, kv_b = f["kv_w"], f["kv_b"]
        for c, name in ((0, "k"), (K * inner, "v")):
            cols = slice(c + k0 * inner, c + k1 * inner)
            out[f"{name}_w"] = kv_w[:, cols]
            out[f"{name}_b"] = None if kv_b is None else kv_b[cols]
    # the accumulators' addends [G, 1, 1, D] (with dropout the bias waits for it) and
    # fc1's bias [G, 1, M], broadcast over each branch's rows
    four = (G, 1, 1, blk.dim)
    suffix = "_unbiased" if dropping else ""
    out["proj_acc"] = out["proj_base" + suffix].view(four)
    out["fc2_acc"] = out["fc2_base" + suffix].view(four)
    out["n1_w4"], out["n2_w4"] = out["n1_w"].view(four), out["n2_w"].view(four)
    out["fc1_b3"] = out["fc1_b"].unsqueeze(1)
    return out


def _made_in_inference_mode(tensors: Iterable[Tensor | None]) -> bool:
    return any(t is not None and t.is_inference() for t in tensors)


def _same_layout(old: dict[str, Tensor | None], new: dict[str, Tensor]) -> bool:
    return all(old[n].shape == t.shape and old[n].dtype == t.dtype and old[n].device == t.device
               for n, t in new.items() if t is not None)


@torch.compiler.disable
def refresh_folds(blocks) -> None:
    """Bring every level's fold cache up to date, eagerly: called by the model before
    its levels run inside torch.compile (one graph break, before any graph)."""
    for i, blk in enumerate(blocks):
        params = _fold_params(blk)
        if not autograd_records(*params):  # with autograd the graph folds
            folded(blk, i == 0, params)


def _compute_folds(blk: ParallelBlock, shared: bool, keep_kv_bias: bool) -> dict[str, Tensor | None]:
    """The folded weights of one level.

    The norm's shift gives q, k and v a bias. Only q's is kept: adding one vector to
    every key adds a constant to each query's scores, which softmax ignores, and adding
    one to every value adds it to each output row (the weights of a row sum to 1), so it
    moves into the projection's bias. That spares the k and v GEMMs a bias pass. With
    attention dropout a row's weights no longer sum to 1, and the biases stay.
    """
    inner = blk.num_heads * blk.head_dim
    qkv_w, qkv_b = _fold(blk.norm1, blk.qkv)
    proj_base = _base_bias(blk, blk.norm1, blk.proj, True)
    proj_base_unbiased = _base_bias(blk, blk.norm1, blk.proj, False)  # dropout acts on the bias
    if not keep_kv_bias:
        v_shift = (blk.proj.weight * qkv_b[:, 2 * inner:].unsqueeze(-1)).sum(1)
        proj_base, proj_base_unbiased = proj_base + v_shift, proj_base_unbiased + v_shift
    if shared:
        qkv_w, qkv_b = _shared_layout(qkv_w, qkv_b)
        split = blk.num_branches * inner
        q_w, kv_w, q_b, kv_b = qkv_w[:, :split], qkv_w[:, split:], qkv_b[:split], qkv_b[split:]
    else:
        q_w, kv_w = qkv_w[..., :inner], qkv_w[..., inner:]
        q_b, kv_b = qkv_b[:, None, :inner], qkv_b[:, None, inner:]
    fc1_w, fc1_b = _fold(blk.norm2, blk.fc1)
    return {"q_w": q_w, "q_b": q_b, "kv_w": kv_w, "kv_b": kv_b if keep_kv_bias else None,
            "fc1_w": fc1_w, "fc1_b": fc1_b, "proj_base": proj_base,
            "proj_base_unbiased": proj_base_unbiased,
            "fc2_base": _base_bias(blk, blk.norm2, blk.fc2, True),
            "fc2_base_unbiased": _base_bias(blk, blk.norm2, blk.fc2, False)}


def _base_bias(blk, norm, lin, with_bias: bool) -> Tensor:
    """What the accumulator adds besides the residual: the projection's bias (unless
    dropout must act on it first), plus the norm's shift for the authors' residual."""
    bias = lin.bias if with_bias else torch.zeros_like(lin.bias)
    return bias if blk.residual == "prenorm" else norm.bias + bias
