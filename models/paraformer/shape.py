"""The arguments that fix a Para-Former's parameters and FLOPs, declared once.

:class:`~paraformer.model.ParaFormer` takes them, and the closed-form counts of
:mod:`paraformer.analytic` read them, so a new shape argument is added in one place
(no torch import here: the counts stay cheap to import).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["ParaFormerShape"]


@dataclass(frozen=True)
class ParaFormerShape:
    """Image, patch, width and branch layout of a Para-Former; defaults are the authors'.

    Args:
        img_size: input image size (int or (H, W)); divisible by ``patch_size``.
        patch_size: patch side p (int or (ph, pw)).
        in_chans: input channels C.
        num_classes: classifier outputs; 0 gives an identity head (pooled features).
        embed_dim: model width D; divisible by ``num_heads``.
        num_heads: attention heads H.
        head_dim: width per head dh (explicit, as in the authors' code; inner width H*dh).
        mlp_dim: FFN hidden width M.
        num_branches: number of parallel branches K >= 1.
        branch_depth: blocks per branch >= 1.

    Values are checked where a model is built (:class:`~paraformer.model.ParaFormer`),
    not here: the formulas take whatever they are given, as they always have.
    """

    img_size: int | tuple[int, int] = 224
    patch_size: int | tuple[int, int] = 16
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 192
    num_heads: int = 3
    head_dim: int = 64
    mlp_dim: int = 768
    num_branches: int = 8
    branch_depth: int = 2

    @classmethod
    def of(cls, shape: ParaFormerShape | None = None, /, **config: Any) -> ParaFormerShape:
        """`shape` (default: the authors') with the shape arguments found in `config`
        applied; other keys (``residual``, ``pool``, dropout rates, ...) are ignored, so
        ``ParaFormerShape.of(**model.config)`` is the model's shape."""
        given = {k: v for k, v in config.items() if k in _NAMES}
        return replace(shape, **given) if shape is not None else cls(**given)

    def as_kwargs(self) -> dict[str, Any]:
        """The shape as ParaFormer / timm.create_model keyword arguments, in field order."""
        return {f: getattr(self, f) for f in _NAMES}


_NAMES = tuple(f.name for f in fields(ParaFormerShape))
