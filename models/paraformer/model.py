"""The Para-Former vision model (Wang & Li, arXiv 2407.21670), three executions of one set of weights."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from .checks import (
    EXECUTIONS,
    POOLS,
    RESIDUALS,
    checked_shape,
    choice,
    execution_for,
    optional_group,
    rate,
)
from .embedding import embed, embed_for_levels
from .groups import branch_plan, prepare_compiled, run_levels
from .layers import ParallelBlock
from .shape import ParaFormerShape

__all__ = ["EXECUTIONS", "POOLS", "RESIDUALS", "ParaFormer"]

class ParaFormer(nn.Module):
    """Para-Former: K parallel transformer branches on a shared embedding, summed.

    Architecture (from the authors' public code)::

        x0 = dropout(cat(cls, Linear(flatten_(p1 p2 c)(patches))) + pos)     # [B, N+1, D]
        y  = sum_k Branch_k(x0)        # plain sum: no gating, no 1/K
        out = Linear(LayerNorm(pool(y)))       # pool: CLS token, or mean over all N+1 tokens

    A branch is ``branch_depth`` transformer blocks (see :class:`~paraformer.layers.ParallelBlock`).
    With the default ``residual="authors"`` a block computes
    ``x = Attn(LN(x)) + LN(x)`` then ``x = FFN(LN(x)) + LN(x)``: the authors wrap
    ``Residual(f)`` (which returns ``f(u) + u``) inside ``PreNorm``, so the
    residual adds the *normalised* input rather than the block input.
    ``residual="prenorm"`` is the standard ``x = x + Attn(LN(x))``;
    ``x = x + FFN(LN(x))``. ``pool="mean"`` averages all tokens including CLS,
    as the authors do.

    Four executions of the same function, sharing one parameter layout (every
    branch tensor is stacked on a leading K axis), so a state_dict moves freely
    between them:

    * ``execution="loop"``: the authors' single-device algorithm, the branches
      run one after another in Python (operator count grows with K);
    * ``execution="fused"``: all branches in one batched pass (operator count
      independent of K), planned in :mod:`paraformer.fused`: LayerNorm affine
      folded into the next GEMM, the shared first level's q and k|v for all
      branches as two plain GEMMs, attention over B sequences of K*H heads,
      one sum over K at the end; on a CPU the branches go through in groups
      sized to the last-level cache (:mod:`paraformer.groups`);
    * ``execution="fused-2pass"``: fused, with fc1's bias and GELU as the two
      eager passes of ``baddbmm`` + GELU instead of the one-pass kernel of
      :mod:`paraformer.epilogue` (the same thing on a CPU): the A/B of that
      kernel on CUDA, chosen per model instance;
    * ``execution="least-work"`` (``pool="cls"`` only): fused, with each
      branch's last block computing keys and values for every token and the
      rest for the CLS row only, the row the head reads. Same output, fewer
      FLOPs (:func:`paraformer.analytic.least_work_block_flops`).

    Switch with :meth:`set_execution`. Without active dropout the fused path
    folds bias and residual into the GEMM accumulator with the in-place
    ``Tensor.baddbmm_``; importing :mod:`paraformer` teaches torch's
    ``FlopCounterMode`` to count that op (see :mod:`paraformer.analytic`).
    LayerNorm eps is 1e-5 (PyTorch's default, as in the authors' code; timm's
    ViT uses 1e-6).

    Args:
        shape: a :class:`~paraformer.shape.ParaFormerShape` (default: the authors');
            its fields may also be given as keyword arguments (``img_size``,
            ``patch_size``, ``in_chans``, ``num_classes``, ``embed_dim``, ``num_heads``,
            ``head_dim``, ``mlp_dim``, ``num_branches``, ``branch_depth``), which
            override the ones in ``shape``.
        residual: ``"authors"`` (default, see above) or ``"prenorm"``.
        pool: ``"cls"`` or ``"mean"``.
        drop_rate: dropout after the attention output projection and in the FFN.
        attn_drop_rate: dropout on the attention probabilities.
        emb_drop_rate: dropout on the embedded tokens.
        execution: ``"loop"``, ``"fused"``, ``"fused-2pass"`` or ``"least-work"``
            (needs ``pool="cls"``).
        branch_group: branches the fused levels run at once; ``None`` (default): the
            rule of :mod:`paraformer.groups` (cache or device memory against the largest
            activation); an int forces it (capped at K). Same function at every value.
        device, dtype: factory arguments for the parameters.
    """

    def __init__(
        self,
        shape: ParaFormerShape | None = None,
        *,
        residual: str = "authors",
        pool: str = "cls",
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.0,
        emb_drop_rate: float = 0.1,
        execution: str = "fused",
        branch_group: int | None = None,
        device=None,
        dtype=None,
        **shape_args: Any,
    ) -> None:
        super().__init__()
        # the shape arguments are ParaFormerShape's fields (declared there once, read by
        # the analytic counts too); a keyword that is none of them is a TypeError there
        shape = checked_shape(
            ParaFormerShape(**shape_args) if shape is None else replace(shape, **shape_args))
        img, patch, in_chans, num_classes = (
            shape.img_size, shape.patch_size, shape.in_chans, shape.num_classes)
        embed_dim, num_heads, head_dim, mlp_dim = (
            shape.embed_dim, shape.num_heads, shape.head_dim, shape.mlp_dim)
        num_branches, branch_depth = shape.num_branches, shape.branch_depth
        residual = choice("residual", residual, RESIDUALS)
        pool = choice("pool", pool, POOLS)
        drop_rate = rate("drop_rate", drop_rate)
        attn_drop_rate = rate("attn_drop_rate", attn_drop_rate)
        emb_drop_rate = rate("emb_drop_rate", emb_drop_rate)
        execution = execution_for(execution, pool)

        fk = {"device": device, "dtype": dtype}
        self.shape = shape
        self.img_size = img
        self.patch_size = patch
        self.in_chans = in_chans
        self.grid_size = (img[0] // patch[0], img[1] // patch[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.num_tokens = self.num_patches + 1
        self.patch_dim = patch[0] * patch[1] * in_chans
        self.num_classes = num_classes
        self.embed_dim = self.num_features = embed_dim
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.mlp_dim = mlp_dim
        self.num_branches = num_branches
        self.branch_depth = branch_depth
        self.residual = residual
        self.pool = pool
        self.drop_rate = drop_rate
        self.attn_drop_rate = attn_drop_rate
        self.emb_drop_rate = emb_drop_rate
        self.execution = execution
        self.branch_group = optional_group(branch_group)

        self.patch_embed = nn.Linear(self.patch_dim, embed_dim, **fk)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim, **fk))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, embed_dim, **fk))
        self.emb_drop = nn.Dropout(emb_drop_rate)
        self.blocks = nn.ModuleList(
            ParallelBlock(
                num_branches,
                embed_dim,
                num_heads,
                head_dim,
                mlp_dim,
                residual=residual,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                **fk,
            )
            for _ in range(branch_depth)
        )
        self.norm = nn.LayerNorm(embed_dim, **fk)
        self.head = nn.Linear(embed_dim, num_classes, **fk) if num_classes else nn.Identity()
        self._reset_outer_parameters()  # the blocks initialised themselves when built
        self.set_execution(execution)

    # -- construction helpers ---------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Truncated-normal(0.02) weights, zero biases, unit norms; random CLS / positions."""
        for blk in self.blocks:
            for m in blk.children():
                m.reset_parameters()
        self._reset_outer_parameters()

    def _reset_outer_parameters(self) -> None:
        """Everything but the blocks. Construction calls only this: each block's layers
        initialise themselves as they are built, and initialising them a second time
        doubled the cost of building a deep model (most of a GPU sweep's set-up)."""
        nn.init.trunc_normal_(self.patch_embed.weight, std=0.02)
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.norm.reset_parameters()
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    def set_execution(self, execution: str) -> ParaFormer:
        """Switch to another of :data:`EXECUTIONS` (same parameters); returns self."""
        self.execution = execution_for(execution, self.pool)
        for blk in self.blocks:  # read by each fused level: this instance's choice alone
            blk.one_pass_epilogue = self.execution != "fused-2pass"
        return self

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments that define the function (not device/dtype)."""
        return {
            **self.shape.as_kwargs(),
            "residual": self.residual,
            "pool": self.pool,
            "drop_rate": self.drop_rate,
            "attn_drop_rate": self.attn_drop_rate,
            "emb_drop_rate": self.emb_drop_rate,
            "execution": self.execution,
        }

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def get_classifier(self) -> nn.Module:
        return self.head

    # -- forward ----------------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        """Images ``[B, C, H, W]`` -> embedded tokens x0 ``[B, N+1, D]``."""
        return embed(self, x)

    def forward_branches(self, x0: Tensor, cls_only: bool = False) -> Tensor:
        """Fused branch stacks on x0 ``[B, N+1, D]`` -> per-branch outputs ``[K, B, N+1, D]``.

        With ``cls_only`` the last level computes the CLS rows only: ``[K, B, D]``.
        """
        self._prepare_compiled_folds()
        return run_levels(self, x0, cls_only)

    def _prepare_compiled_folds(self) -> None:
        """Inside torch.compile, update the levels' folded weights eagerly first (one
        graph break before any graph), so the compiled graph reads them instead of
        recomputing them from the parameters on every call. Every public entry that
        runs the fused levels calls this first; they run the levels with ``run_levels``."""
        if torch.compiler.is_compiling():
            prepare_compiled(self)

    def branch_plan(self, batch: int, dtype=None, device=None) -> dict:
        """The fused group size for ``batch`` images and the rule's inputs (for records)."""
        p = self.cls_token
        return branch_plan(self, batch, dtype or p.dtype, torch.device(device or p.device),
                           cls_only=self.execution == "least-work")

    def release_workspace(self) -> None:
        """Free the buffers CPU forwards without autograd keep for the fused levels'
        intermediates (:mod:`paraformer.workspace`); the next such forward makes them anew."""
        self.__dict__.pop("_workspaces", None)

    def __getstate__(self) -> dict:
        """Pickles and deep copies leave the workspace behind: scratch memory, and keyed
        by the ids of this process's threads."""
        state = super().__getstate__()
        state.pop("_workspaces", None)
        state.pop("_patch_kernel_kept", None)
        return state

    def forward_branch(self, x0: Tensor, k: int) -> Tensor:
        """Branch ``k`` alone on x0 ``[B, N+1, D]`` -> ``[B, N+1, D]``."""
        x = x0
        for blk in self.blocks:
            x = blk.forward_branch(x, k)
        return x

    def _loop_sum(self, x0: Tensor) -> Tensor:
        y = self.forward_branch(x0, 0)
        for k in range(1, self.num_branches):
            y = y + self.forward_branch(x0, k)
        return y

    def forward_features(self, x: Tensor) -> Tensor:
        """Images -> the branch sum ``y = sum_k Branch_k(x0)``, ``[B, N+1, D]``.

        The least-work execution computes the CLS token only and returns ``[B, 1, D]``
        (which :meth:`forward_head` pools the same way).
        """
        if self.execution == "loop":
            return self._loop_sum(self.embed(x))
        self._prepare_compiled_folds()
        x0 = embed_for_levels(self, x)
        if self.execution == "least-work":
            return run_levels(self, x0, True, lambda z: z.sum(0)).unsqueeze(1)
        return run_levels(self, x0, False, lambda z: z.sum(0))

    def forward_head(self, y: Tensor, pre_logits: bool = False) -> Tensor:
        """Branch sum ``[B, N+1, D]`` -> pooled, normalised -> logits."""
        y = y[:, 0] if self.pool == "cls" else y.mean(1)
        y = self.norm(y)
        return y if pre_logits else self.head(y)

    def forward(self, x: Tensor) -> Tensor:
        if self.execution == "loop":
            return self.forward_head(self._loop_sum(self.embed(x)))
        self._prepare_compiled_folds()
        x0 = embed_for_levels(self, x)
        if self.execution == "least-work":
            return self.head(self.norm(run_levels(self, x0, True, lambda z: z.sum(0))))
        # One reduction over K per group, restricted to what the head reads.
        if self.pool == "cls":
            y = run_levels(self, x0, False, lambda z: z[:, :, 0].sum(0))
        else:
            y = run_levels(self, x0, False, lambda z: z.sum((0, 2))) / x0.shape[1]
        return self.head(self.norm(y))

    def extra_repr(self) -> str:
        return (
            f"num_branches={self.num_branches}, branch_depth={self.branch_depth}, "
            f"execution={self.execution!r}, residual={self.residual!r}, pool={self.pool!r}"
        )
