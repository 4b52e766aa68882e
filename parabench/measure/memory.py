"""Peak memory of a measured window: GPU allocator peaks, or the process's peak RSS.

On Linux the peak RSS (VmHWM) can be reset by writing "5" to /proc/self/clear_refs, so
each point gets its own peak instead of the process's lifetime maximum. Where that is
not allowed, the lifetime peak is reported and marked as such.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["PeakMemory", "proc_kb"]


def proc_kb(field: str, path: str = "/proc/self/status") -> int | None:
    """A "Field:   123 kB" value of a /proc file (status, meminfo), or None if absent."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class PeakMemory:
    """`pm.start()` (or `with PeakMemory(device) as pm:`) opens the window; then
    pm.result() gives {peak_mem_allocated, peak_mem_reserved, peak_rss,
    rss_peak_is_lifetime} since the start."""

    def __init__(self, device: str):
        self.device = device
        self.rss_reset = False
        self.started = False

    def __enter__(self):
        return self.start()

    def start(self):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.rss_reset = True
        except OSError:
            self.rss_reset = False
        self.started = True
        return self

    def __exit__(self, *exc):
        return False

    def result(self) -> dict:
        if not self.started:
            raise RuntimeError("PeakMemory.result() before start(): the window never opened")
        out = {"peak_mem_allocated": None, "peak_mem_reserved": None}
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            out["peak_mem_allocated"] = int(torch.cuda.max_memory_allocated())
            out["peak_mem_reserved"] = int(torch.cuda.max_memory_reserved())
        hwm = proc_kb("VmHWM")
        if hwm is None:
            import resource

            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
            self.rss_reset = False
        out["peak_rss"] = hwm * 1024
        out["rss_peak_is_lifetime"] = not self.rss_reset
        return out
