"""The memory guard of worker processes: an address-space limit (RLIMIT_AS) per worker,
so a point that asks for more memory than the machine has fails at once with an
allocation error (an `oom` row) instead of growing until the kernel's OOM killer ends
it, or something else, minutes later.

The limit is the worker's address space after its imports plus a budget; the default
budget is DEFAULT_FRACTION of the memory available when the run starts, shared by the
workers. RLIMIT_AS counts reserved address space, not resident memory, and the CUDA
driver reserves terabytes of it, so on CUDA the guard stays off (GPU allocations fail
cleanly on their own; host memory is then unguarded).
"""
from __future__ import annotations

import resource
from pathlib import Path

from ..measure.memory import proc_kb

__all__ = ["DEFAULT_FRACTION", "apply_limit", "available_bytes", "default_budget",
           "oom_kills"]

#: Share of MemAvailable (at the start of the run) that the workers may use together.
DEFAULT_FRACTION = 0.5


def available_bytes() -> int | None:
    kb = proc_kb("MemAvailable", "/proc/meminfo")
    return None if kb is None else kb * 1024


def default_budget(workers: int) -> int | None:
    """Bytes each of `workers` workers may add to its address space by default."""
    avail = available_bytes()
    return None if avail is None else int(avail * DEFAULT_FRACTION / max(1, workers))


def apply_limit(budget: int) -> int:
    """Limit this process's address space to its present size plus `budget` bytes;
    returns the limit set."""
    now_kb = proc_kb("VmSize") or 0
    limit = now_kb * 1024 + int(budget)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has ended since boot (None: unknown).
    A worker killed by SIGKILL while this count went up was most likely one of them."""
    try:
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None
