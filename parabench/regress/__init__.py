"""Comparing and tracking performance: two sides, a verdict per benchmark, history.

Data flows through the modules top to bottom:

    asv_results  the one reader of asv result files (compare and history share it)
    sides        what A and B name (store runs or commits' asv results), their benchmarks
    interleave   measure two commits now, in alternating turns; `worker` is the
                 process that measures one side, run from that side's checkout
    verdicts     the rule: when a difference is "slower", and which verdicts regress
    stats        bootstrap interval, Mann-Whitney test, per-benchmark comparison
    compare      rows per benchmark -> the comparison dict (stored, rendered)
    render       text / markdown / json / GitHub annotations, and the exit code
    history      values across commits, and the commits where they stepped

The names below are imported on first use, so `import parabench.regress` stays light
(no numpy, pandas or torch).
"""
from __future__ import annotations

import importlib

__all__ = [
    "detect_change_points",
    "exit_code",
    "interleaved_runs",
    "is_regression",
    "load_asv_history",
    "load_store_history",
    "render",
    "run_compare",
]

_HOME = {
    "detect_change_points": "history",
    "exit_code": "render",
    "interleaved_runs": "interleave",
    "is_regression": "verdicts",
    "load_asv_history": "history",
    "load_store_history": "history",
    "render": "render",
    "run_compare": "compare",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
