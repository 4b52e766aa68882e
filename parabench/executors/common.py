"""What every executor shares: what to measure at each point (rebuilt inside each
worker, since passes hold models and open files that cannot travel between processes),
measuring one point where the executor runs it, the worker's environment, and the
test-only fault injection."""
from __future__ import annotations

import functools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..measure.instructions import DEFAULT_NUMBER, DEFAULT_REPEATS

__all__ = ["FAULT_ENV", "KINDS", "PassSpec", "inject_fault", "measure_here", "poisons_cuda",
           "worker_environment"]

#: Test-only: "KIND:TEXT" makes a worker misbehave inside every point whose key contains
#: TEXT, as real failures do: abort (SIGABRT, as a failed assertion in a C++ kernel),
#: segv (SIGSEGV), kill (SIGKILL, as the kernel's OOM killer), sleep (hang for a minute),
#: cuda-assert (a device-side assert, which leaves the CUDA context unusable).
FAULT_ENV = "PARABENCH_FAULT"
#: Errors after which a process's CUDA context stays broken: only a new process recovers.
STICKY_CUDA_ERRORS = ("device-side assert", "illegal memory access", "CUDA error: unspecified launch",
                      "misaligned address", "illegal instruction")


#: What a point's measurement is: its latency (and the extra passes after it), or the
#: instructions one forward executes under Callgrind.
KINDS = ("latency", "instructions")


@dataclass(frozen=True)
class PassSpec:
    """What to measure at each point, in a form that can be sent to a worker: the kind
    (KINDS); for latency, which extra passes follow it (see measure/passes.py); for
    instructions, forwards per repeat and repeats. `db` lets a worker on the driver's
    machine cache its measured peak in the store's `peaks` table (read and written
    there only)."""

    profile: bool = False
    telemetry: bool = True
    trace_dir: str | None = None
    db: str | None = None
    kind: str = "latency"
    number: int = DEFAULT_NUMBER
    repeats: int = DEFAULT_REPEATS
    #: the source tree whose code a count executes (a checkout of another commit);
    #: None: this parabench's. Only valgrind's process imports it, so a commit from
    #: before this worker existed can still be counted.
    source: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown measurement kind {self.kind!r}; one of {KINDS}")

    def open_store(self):
        """The run's store, when this worker can reach its file (None elsewhere)."""
        if self.db and Path(self.db).exists():
            from ..store import Store

            return Store(self.db, create=False)
        return None

    def key_of(self, point) -> str:
        """The key of `point`'s record: counts have keys of their own, so a count can
        never be read as a latency."""
        if self.kind == "instructions":
            from ..measure.instructions import count_key

            return count_key(point)
        return point.key

    def build(self, sweep, store=None) -> list:
        """The pass functions, for a worker."""
        from ..measure.passes import extra_passes

        if self.kind != "latency":
            return []

        return extra_passes(sweep, profile=self.profile, telemetry=self.telemetry,
                            trace_dir=self.trace_dir, store=store)


@functools.cache
def worker_environment() -> dict:
    """This process's environment as `environment.collect()` sees it (host, GPU, driver,
    CUDA, torch...), without the git state, which is the driver's and kept with the run."""
    from ..environment import collect

    env = collect()
    env.pop("git", None)
    return env


def measure_here(point, sweep, *, spec: PassSpec | None = None, passes=(), run_id: str = "",
                 store=None):
    """Measure `point` in this process as `spec` says (default: its latency) and stamp
    the record with where it was measured."""
    from ..errors import one_line
    from ..measure.point import measure_point
    from ..records import Record

    try:
        inject_fault(point.key)
        if spec is not None and spec.kind == "instructions":
            from ..measure.instructions import count_record

            rec = count_record(point, sweep, source=spec.source, number=spec.number,
                               repeats=spec.repeats)
        else:
            rec = measure_point(point, sweep, passes=passes, run_id=run_id, store=store)
    except Exception as e:  # an injected CUDA error, raised as the kernel's would be
        rec = Record.for_point(point, sweep, status="error", reason=one_line(e))
    env = worker_environment()
    rec.machine, rec.env = env.get("machine"), env
    return rec


def inject_fault(key: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec or ":" not in spec:
        return
    kind, text = spec.split(":", 1)
    if text not in key:
        return
    if kind == "abort":
        os.abort()
    elif kind in ("segv", "kill"):
        os.kill(os.getpid(), signal.SIGSEGV if kind == "segv" else signal.SIGKILL)
        time.sleep(5)  # the signal arrives asynchronously
    elif kind == "sleep":
        time.sleep(60)
    elif kind == "cuda-assert":
        import torch

        x = torch.zeros(1, device="cuda")
        x[torch.tensor([1 << 20], device="cuda")] = 1  # out of bounds: device-side assert
        torch.cuda.synchronize()


def poisons_cuda(rec) -> bool:
    """Did this point end with an error that leaves the process's CUDA context unusable?"""
    return rec.status == "error" and any(t in (rec.reason or "") for t in STICKY_CUDA_ERRORS)
