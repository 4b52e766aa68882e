"""The patch embedding: images ``[B, C, H, W]`` -> tokens x0 ``[B, N+1, D]``.

The authors' Linear over patches flattened (p1 p2 c) is a convolution of stride p whose
kernel is that Linear's weight read as ``[D, p1, p2, c] -> [D, c, p1, p2]``: the same
function and parameters, without first copying the image into patch order (the copy
cost 1.9 of the 6.9 ms the embedding took at ViT-S width, batch 8, on 2 CPU threads;
timm's ViT embeds this way). Where x0 is written into the fused levels' workspace, the
patches are copied in the kernel's (c p1 p2) order instead and go through one GEMM
(:func:`embed_for_levels`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from .epilogue import autograd_records
from .workspace import kept, workspace_for

if TYPE_CHECKING:
    from .model import ParaFormer
    from .workspace import Workspace

__all__ = ["embed", "embed_for_levels"]


def _check_images(model: ParaFormer, x: Tensor) -> None:
    B, C, H, W = x.shape
    if (H, W) != model.img_size or C != model.in_chans:
        raise ValueError(
            f"expected input [B, {model.in_chans}, {model.img_size[0]}, {model.img_size[1]}], "
            f"got {list(x.shape)}"
        )


def _kernel_view(model: ParaFormer) -> Tensor:
    """The Linear's weight ``[D, p1*p2*c]`` read as ``[D, c, p1, p2]`` (a strided view)."""
    ph, pw = model.patch_size
    return model.patch_embed.weight.view(-1, ph, pw, model.in_chans).permute(0, 3, 1, 2)


def patch_kernel(model: ParaFormer) -> Tensor:
    """The patch Linear's weight as a contiguous conv kernel ``[D, c, p1, p2]``.

    Given the permuted view itself, the CPU convolution reorders it on every call: 1.4
    of the 7.7 ms the embedding took at ViT-S width, batch 8, 2 threads (with a
    contiguous kernel 6.2 ms; timm's ViT keeps its kernel contiguous). Outside autograd
    the contiguous copy is kept until the weight changes (its storage, version counter
    or dtype), as the fused levels keep their folded weights.
    """
    w = model.patch_embed.weight
    # (an inference tensor, such as a copy of the model made under inference_mode, has
    # no version counter to key on)
    if torch.compiler.is_compiling() or autograd_records(w) or w.is_inference():
        return _kernel_view(model).contiguous()
    # made under inference_mode it is an inference tensor, which autograd may not save
    # for an input's gradient outside it, nor may it be written outside: one per mode
    kept = model.__dict__.get("_patch_kernel_kept")
    if kept is None:
        kept = model.__dict__["_patch_kernel_kept"] = {}
    mode, key = torch.is_inference_mode_enabled(), (w.data_ptr(), w._version, w.dtype)
    entry = kept.get(mode)
    if entry is None or entry[0] != key:
        kernel = _kernel_view(model)
        old = None if entry is None else entry[1]
        if old is not None and (old.shape, old.dtype, old.device) == (
                kernel.shape, kernel.dtype, kernel.device):
            kernel = old.copy_(kernel)  # in place: a CUDA graph captured on it stays valid
        else:
            kernel = kernel.contiguous()
        entry = kept[mode] = (key, kernel)
    return entry[1]


def _patch_tokens(model: ParaFormer, x: Tensor) -> Tensor:
    """``[B, N, D]`` (a transposed view of the convolution's output)."""
    _check_images(model, x)
    y = F.conv2d(x, patch_kernel(model), model.patch_embed.bias, stride=model.patch_size)
    return y.flatten(2).transpose(1, 2)


def embed(model: ParaFormer, x: Tensor) -> Tensor:
    """x0 in fresh memory: every execution's, and what ``ParaFormer.embed`` returns."""
    tokens = _patch_tokens(model, x)
    x0 = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), tokens), dim=1)
    return model.emb_drop(x0 + model.pos_embed)


def _patch_rows(model: ParaFormer, x: Tensor, ws: Workspace) -> Tensor:
    """x's patches ``[B, N, c*p1*p2]`` in a workspace buffer, each flattened in the kept
    kernel's (c p1 p2) order: rows of p2 pixels that lie side by side in the image, so
    the copy moves runs of p2 values (at ViT-S width, batch 8, 0.3 ms; in the authors'
    (p1 p2 c) order, whose runs are one value long, 1.9 ms)."""
    _check_images(model, x)
    B, C, H, W = x.shape
    (ph, pw), (gh, gw) = model.patch_size, model.grid_size
    rows = ws.take("patches", (B, gh * gw, C * ph * pw), x)
    blocks = x.unflatten(2, (gh, ph)).unflatten(4, (gw, pw)).permute(0, 2, 4, 1, 3, 5)
    rows.view(B, gh, gw, C, ph, pw).copy_(blocks)
    return rows


def embed_for_levels(model: ParaFormer, x: Tensor) -> Tensor:
    """x0 for the fused levels. On a CPU without autograd it is written into the
    workspace (:mod:`paraformer.workspace`), instead of a concatenation and a sum into
    fresh memory on every call (at ViT-S width, batch 8, 2 threads the fresh tensors'
    page faults made the embedding take 11.1 ms, of which the convolution was 6.6).
    The levels only read x0, and a forward never returns it.

    There the patches go through the authors' Linear as one GEMM, with the positions
    and the Linear's bias added by the GEMM itself, instead of the strided convolution
    of :func:`embed`: at ViT-S width, 2 threads, the convolution took 0.94, 9.0 and
    35.4 ms at batch 1, 8 and 32, the copy into patches plus the GEMM 0.80, 6.2 and
    26.8 ms (oneDNN's convolution with a stride as large as its kernel does not reach
    the GEMM's speed on this kind of CPU).
    """
    ws = workspace_for(model, x)
    if ws is None or (model.training and model.emb_drop.p > 0.0):
        return embed(model, x)
    rows = _patch_rows(model, x, ws)
    B, N, D = x.shape[0], model.num_patches, model.embed_dim
    x0 = ws.take("x0", (B, N + 1, D), rows)
    views = ws.views(("x0", B, rows.dtype))
    cls_row = kept(views, "cls", x0, lambda: x0[:, :1])
    token_rows = kept(views, "tokens", x0, lambda: x0[:, 1:])
    params = model._parameters
    pos = params["pos_embed"]
    addend = ws.take("patch_addend", (N, D), rows)
    torch.add(pos[0, 1:], model.patch_embed.bias, out=addend)
    weight = patch_kernel(model).view(D, -1).t()  # [c*p1*p2, D]
    torch.baddbmm(addend, rows, weight.expand(B, -1, -1), out=token_rows)
    torch.add(params["cls_token"].expand(B, 1, D), pos[:, :1], out=cls_row)
    return x0
