"""timm registration: ``timm.create_model("paraformer_tiny_patch16_224", num_branches=K, ...)``.

Importing :mod:`paraformer` imports this module, which registers the variants
below with ``timm.models.register_model``. Caller keyword arguments override
the variant defaults. There are no pretrained weights: ``pretrained=True``
raises ``ValueError``.
"""

from __future__ import annotations

from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import register_model

from .model import ParaFormer

__all__ = ["VARIANTS", "create_paraformer"]

# Architecture defaults per registered name (any can be overridden by the caller).
VARIANTS: dict[str, dict[str, Any]] = {
    # The authors' defaults.
    "paraformer_tiny_patch16_224": {
        "img_size": 224,
        "patch_size": 16,
        "embed_dim": 192,
        "num_heads": 3,
        "head_dim": 64,
        "mlp_dim": 768,
        "num_branches": 8,
        "branch_depth": 2,
    },
    # ViT-S width (the width of timm's vit_small_patch16_224).
    "paraformer_small_patch16_224": {
        "img_size": 224,
        "patch_size": 16,
        "embed_dim": 384,
        "num_heads": 6,
        "head_dim": 64,
        "mlp_dim": 1536,
        "num_branches": 8,
        "branch_depth": 2,
    },
    # ViT-B width.
    "paraformer_base_patch16_224": {
        "img_size": 224,
        "patch_size": 16,
        "embed_dim": 768,
        "num_heads": 12,
        "head_dim": 64,
        "mlp_dim": 3072,
        "num_branches": 8,
        "branch_depth": 2,
    },
}


def _pretrained_cfg(name: str, model: ParaFormer) -> dict[str, Any]:
    h, w = model.img_size
    return {
        "architecture": name,
        "url": "",
        "num_classes": model.num_classes,
        "input_size": (model.in_chans, h, w),
        "fixed_input_size": True,
        "interpolation": "bicubic",
        "crop_pct": 0.9,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed",
        "classifier": "head",
    }


# Read by timm.register_model (old-style dict cfgs): none of them has weights.
default_cfgs = {
    name: {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, cfg["img_size"], cfg["img_size"]),
        "fixed_input_size": True,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed",
        "classifier": "head",
    }
    for name, cfg in VARIANTS.items()
}


def create_paraformer(variant: str, pretrained: bool = False, **kwargs: Any) -> ParaFormer:
    """Build a registered variant; ``kwargs`` (ParaFormer arguments) override its defaults."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    if pretrained:
        raise ValueError(
            f"pretrained=True: no pretrained weights exist for {variant} "
            "(Para-Former is benchmarked from random initialisation)"
        )
    # Arguments timm's create_model passes to every entrypoint; meaningless here.
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    model = ParaFormer(**{**VARIANTS[variant], **kwargs})
    model.pretrained_cfg = model.default_cfg = _pretrained_cfg(variant, model)
    return model


@register_model
def paraformer_tiny_patch16_224(pretrained: bool = False, **kwargs: Any) -> ParaFormer:
    """Para-Former, authors' defaults: D 192, H 3, dh 64, M 768, patch 16, K 8, depth 2."""
    return create_paraformer("paraformer_tiny_patch16_224", pretrained, **kwargs)


@register_model
def paraformer_small_patch16_224(pretrained: bool = False, **kwargs: Any) -> ParaFormer:
    """Para-Former at ViT-S width: D 384, H 6, dh 64, M 1536, patch 16, K 8, depth 2."""
    return create_paraformer("paraformer_small_patch16_224", pretrained, **kwargs)


@register_model
def paraformer_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> ParaFormer:
    """Para-Former at ViT-B width: D 768, H 12, dh 64, M 3072, patch 16, K 8, depth 2."""
    return create_paraformer("paraformer_base_patch16_224", pretrained, **kwargs)
