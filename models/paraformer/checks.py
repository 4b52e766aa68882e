"""Argument checks of :class:`~paraformer.model.ParaFormer`: each names the argument it refuses."""

from __future__ import annotations

from dataclasses import replace
from numbers import Real
from typing import Any

from .shape import ParaFormerShape

__all__ = ["EXECUTIONS", "POOLS", "RESIDUALS", "checked_shape", "choice", "execution_for",
           "optional_group", "pair", "positive_int", "rate"]

EXECUTIONS = ("loop", "fused", "fused-2pass", "least-work")
RESIDUALS = ("authors", "prenorm")
POOLS = ("cls", "mean")


def pair(name: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        out = tuple(value)
    else:
        out = (value, value)
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int (or a pair of them), got {value!r}")
    return out  # type: ignore[return-value]


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def execution_for(execution: Any, pool: str) -> str:
    execution = choice("execution", execution, EXECUTIONS)
    if execution == "least-work" and pool != "cls":
        raise ValueError(
            f"execution='least-work' needs pool='cls' (it computes the CLS row of the last "
            f"blocks only), got pool={pool!r}"
        )
    return execution


def optional_group(value: Any) -> int | None:
    """``None`` (the plan of :mod:`paraformer.groups` decides) or a group size >= 1."""
    return None if value is None else positive_int("branch_group", value)


def checked_shape(s: ParaFormerShape) -> ParaFormerShape:
    """`s` with image and patch sizes as (H, W) pairs; ValueError names a bad field."""
    img = pair("img_size", s.img_size)
    patch = pair("patch_size", s.patch_size)
    if img[0] % patch[0] or img[1] % patch[1]:
        raise ValueError(
            f"img_size {s.img_size!r} must be divisible by patch_size {s.patch_size!r}"
        )
    positive_int("in_chans", s.in_chans)
    c = s.num_classes
    if isinstance(c, bool) or not isinstance(c, int) or c < 0:
        raise ValueError(f"num_classes must be an int >= 0, got {c!r}")
    for name in ("embed_dim", "num_heads", "head_dim", "mlp_dim"):
        positive_int(name, getattr(s, name))
    if s.embed_dim % s.num_heads:
        raise ValueError(
            f"embed_dim ({s.embed_dim}) must be divisible by num_heads ({s.num_heads})"
        )
    positive_int("num_branches", s.num_branches)
    positive_int("branch_depth", s.branch_depth)
    return replace(s, img_size=img, patch_size=patch)
