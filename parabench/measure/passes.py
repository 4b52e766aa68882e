"""Which extra passes (after the latency pass) a run performs for each point."""
from __future__ import annotations


def extra_passes(sweep, *, profile: bool, telemetry: bool, trace_dir, store) -> list:
    """The profile, telemetry and efficiency passes that apply to this sweep."""
    return []
