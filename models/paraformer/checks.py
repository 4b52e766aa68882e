"""Argument checks of :class:`~paraformer.model.ParaFormer`: each names the argument it refuses."""

from __future__ import annotations

from numbers import Real
from typing import Any

__all__ = ["EXECUTIONS", "POOLS", "RESIDUALS", "choice", "execution_for", "pair",
           "optional_group", "positive_int", "rate"]

EXECUTIONS = ("loop", "fused", "least-work")
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
