"""Every command-line value parser, in one place.

Each turns one flag's text into a checked value or raises argparse.ArgumentTypeError,
which argparse prints as one line naming the flag, with exit code 2. Kept free of heavy
imports: parsers run while `--help` is being built.
"""
from __future__ import annotations

import argparse

__all__ = ["byte_size", "fraction", "int_list", "memory_budget", "non_empty", "positive_float",
           "positive_int", "probability", "str_list", "threshold", "worker_count"]

#: The most any count flag takes (rounds, forwards, a step's length...): far past any real
#: use, and small enough that a typo of a few extra digits is refused, not run for days.
MAX_COUNT = 1_000_000
#: The most processes a flag may start (--workers, --processes, --jobs).
MAX_WORKERS = 256


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


def positive_int(text: str, hi: int = MAX_COUNT) -> int:
    v = _parse(text, int, "an integer")
    if not 1 <= v <= hi:
        _fail(f"must be between 1 and {hi}, got {text.strip()[:30]}")
    return v


def worker_count(text: str) -> int:
    """A number of processes to start: 1 to MAX_WORKERS."""
    return positive_int(text, MAX_WORKERS)


def non_empty(text: str) -> str:
    """A name or id that must be given: '' (an empty variable, a stray quote) refused."""
    if not text.strip():
        _fail("must not be empty")
    return text


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
