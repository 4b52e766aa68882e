"""The report's sections, one module per kind: DataFrames in, a `Section` out.

`all_sections(ctx)` makes them in page order; `files_section` comes last, once `build`
knows which files it wrote. Modules: `context` (the `Context` every section reads and
shared helpers), `verdict`, `environment`, `latency` (latency and the parallel/serial
ratio), `metrics` (throughput, efficiency, energy, memory), `profiler`, `history`,
`turns` (families timed in turns), `comparison`, `not_measured`, `files`.
"""
from __future__ import annotations

from ..content import Section
from .comparison import comparison_section
from .context import Context
from .environment import environment_section
from .files import files_section
from .history import history_section
from .latency import latency_section, ratio_section
from .metrics import efficiency_section, energy_section, memory_section, throughput_section
from .not_measured import not_measured_section
from .profiler import profile_section
from .turns import turns_section
from .verdict import verdict_section

__all__ = ["SECTIONS", "Context", "all_sections", "files_section"]

#: Every section but `files`, in page order.
SECTIONS = (verdict_section, environment_section, latency_section, ratio_section,
            turns_section, throughput_section, efficiency_section, energy_section, memory_section,
            profile_section, history_section, comparison_section, not_measured_section)


def all_sections(ctx: Context) -> list[Section]:
    return [make(ctx) for make in SECTIONS]
