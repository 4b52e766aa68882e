"""Every command-line value parser, in one place.

Each turns one flag's text into a checked value or raises argparse.ArgumentTypeError,
which argparse prints as one line naming the flag, with exit code 2. Kept free of heavy
imports: parsers run while `--help` is being built.
"""
from __future__ import annotations

import argparse

__all__ = ["byte_size", "fraction", "int_list", "memory_budget", "positive_float", "positive_int",
           "probability", "str_list", "threshold"]


def _fail(message: str):
    raise argparse.ArgumentTypeError(message) from None


def int_list(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4)."""
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        _fail(f"expected comma-separated integers, got {text!r}")


def str_list(text: str) -> tuple[str, ...]:
    """'a, b' -> ('a', 'b')."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _parse(text: str, convert, what: str):
    try:
        return convert(text)
    except ValueError:
        _fail(f"expected {what}, got {text!r}")


def positive_int(text: str) -> int:
    v = _parse(text, int, "an integer")
    if v < 1:
        _fail(f"must be >= 1, got {v}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0 (nan and inf refused)."""
    v = _parse(text, float, "a number")
    if not 0 < v < float("inf"):
        _fail(f"must be a finite number > 0, got {text}")
    return v


def fraction(text: str) -> float:
    """'0.1' or '10%' -> 0.1; never negative."""
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        _fail(f"expected a fraction like 0.1 or 10%, got {text!r}")
    if not v >= 0:  # also refuses nan
        _fail(f"must be >= 0, got {v:g}")
    return v


def threshold(text: str) -> float:
    """A minimum effect: a fraction in [0, 10)."""
    v = fraction(text)
    if not v < 10:
        _fail(f"threshold must be in [0, 10), got {v:g}")
    return v


def probability(text: str) -> float:
    """A significance level in (0, 1)."""
    v = _parse(text, float, "a probability")
    if not 0 < v < 1:
        _fail(f"alpha must be in (0, 1), got {v:g}")
    return v


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def byte_size(text: str) -> int:
    """'512M', '8G', '8GiB', '1.5T' or a plain number of bytes -> bytes (binary units)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    v = _parse(t[:len(t) - len(unit)] if unit else t, float, "a size like 8G or 512M")
    size = v * _UNITS[unit]
    if not 1 <= size < 2**62:
        _fail(f"must be a size of at least one byte, got {text!r}")
    return int(size)


def memory_budget(text: str) -> int:
    """A worker's memory budget: a byte_size of at least 64 MiB (a bare '8' is a typo for
    8G far more often than a wish for 8 bytes)."""
    v = byte_size(text)
    if v < 64 * 2**20:
        _fail(f"{text!r} is under 64M; give a unit, e.g. 8G or 512M")
    return v
