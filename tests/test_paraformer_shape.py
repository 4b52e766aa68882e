"""ParaFormerShape: the shape arguments declared once, for the model and the formulas."""
from __future__ import annotations

from dataclasses import fields

import pytest
from paraformer import ParaFormer, ParaFormerShape, paraformer_flops, param_count

TINY = ParaFormerShape(img_size=32, patch_size=8, num_classes=10, embed_dim=64, num_heads=2,
                       head_dim=32, mlp_dim=128, num_branches=3, branch_depth=2)


def test_the_model_and_the_formulas_take_one_shape():
    by_shape, by_keywords = ParaFormer(TINY), ParaFormer(**TINY.as_kwargs())
    assert by_shape.config == by_keywords.config
    n = sum(p.numel() for p in by_shape.parameters())
    assert n == param_count(TINY) == param_count(**TINY.as_kwargs()) == param_count(
        **by_shape.config)
    for execution in ("fused", "least-work"):
        assert paraformer_flops(TINY, execution=execution) == paraformer_flops(
            **TINY.as_kwargs(), execution=execution)
    assert paraformer_flops(TINY, execution="least-work") < paraformer_flops(TINY)


def test_every_shape_field_is_a_model_argument_and_a_config_key():
    m = ParaFormer(TINY, num_branches=5)  # a keyword overrides the shape's field
    assert m.num_branches == 5 and m.shape.num_branches == 5
    names = [f.name for f in fields(ParaFormerShape)]
    assert list(m.config)[:len(names)] == names
    assert ParaFormerShape.of(**m.config) == m.shape  # pairs: img and patch as (H, W)
    assert m.shape.img_size == (32, 32) and TINY.img_size == 32


def test_a_misspelt_shape_argument_is_refused_and_a_bad_one_named():
    with pytest.raises(TypeError, match="num_branch"):
        ParaFormer(num_branch=2)
    with pytest.raises(ValueError, match="num_branches"):
        ParaFormer(TINY, num_branches=0)
    with pytest.raises(ValueError, match="divisible by patch_size"):
        ParaFormer(TINY, img_size=36)
