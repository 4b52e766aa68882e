"""The `process` executor: long-lived worker processes that measure points sent to them.

Why processes: on a GPU, an illegal memory access or a device-side assert leaves the
CUDA context unusable for the rest of the process, and a segfault in a kernel ends it;
only a new process recovers. So a worker that dies takes only its point with it: the
point becomes an `error` row (or `oom` when the kernel's OOM killer ended it) with the
reason, a new worker replaces it, and the sweep goes on.

One worker per GPU on CUDA (each sees one device through CUDA_VISIBLE_DEVICES), one on
CPU (points measured side by side on a 2-core machine would disturb each other's
timing); `workers` overrides both. Each worker imports torch once and then measures
point after point, so the start-up cost is paid once per worker, not per point. What a
worker is, how it is started and spoken to: worker.py and channel.py, the same for
every schedule. Memory guard: see memory_guard.py.
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import asdict

from ..errors import UsageError
from .channel import WorkerGone, WorkerProcess

__all__ = ["ProcessExecutor"]

#: A worker that dies this many times in a row before measuring anything is broken.
MAX_FAILED_STARTS = 3


class _Slot:
    """One worker place: its environment (the GPU it sees) and the worker in it now."""

    def __init__(self, index: int, environ: dict):
        self.index, self.environ = index, environ
        self.worker: WorkerProcess | None = None
        self.point = None
        self.deadline: float | None = None  # time.monotonic() by which the point must end


class ProcessExecutor:
    name = "process"

    def __init__(self, passes, *, workers: int | None = None, memory_limit: int | None = None,
                 point_timeout: float | None = None, log=print):
        self.spec = passes
        self._workers_wanted = workers
        self.memory_limit = memory_limit
        self.point_timeout = point_timeout
        self._log = log
        self._slots: list[_Slot] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for slot in self._slots:
            if slot.worker is not None:
                slot.worker.stop()
        self._slots = []

    # -- plan -------------------------------------------------------------------------
    def _environs(self, sweep) -> list[dict]:
        """One environment change per worker: which GPU it sees, on CUDA."""
        if sweep.device != "cuda":
            return [{} for _ in range(self._workers_wanted or 1)]
        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = ([v.strip() for v in visible.split(",") if v.strip()] if visible
               else [str(i) for i in range(torch.cuda.device_count())])
        n = self._workers_wanted or len(ids) or 1
        return [{"CUDA_VISIBLE_DEVICES": ids[i % len(ids)]} if ids else {} for i in range(n)]

    def _budget(self, sweep, n: int) -> int | None:
        from .memory_guard import default_budget

        if self.spec.kind == "instructions":
            # the count runs in valgrind's own process, which would inherit the limit
            # and needs address space of its own: the guard binds the wrong process
            return None
        if sweep.device == "cuda":
            if self.memory_limit:
                self._log("note: --memory-limit is not applied on CUDA (the driver reserves "
                          "more address space than any limit); GPU allocations fail cleanly")
            return None
        return self.memory_limit or default_budget(n)

    # -- running ----------------------------------------------------------------------
    def run(self, points, sweep, *, run_id: str, store=None, started=lambda p: None):
        from multiprocessing.connection import wait

        environs = self._environs(sweep)[:max(1, len(points))]
        budget = self._budget(sweep, len(environs))
        self._slots = [_Slot(i, e) for i, e in enumerate(environs)]
        queue = deque(points)
        failed_starts = 0
        idle = list(self._slots)

        def fresh(slot: _Slot) -> WorkerProcess:
            nonlocal failed_starts
            while True:
                w = WorkerProcess(f"slot {slot.index}", budget=budget, environ=slot.environ)
                try:
                    w.hello()
                    w.send(cmd="sweep", sweep=sweep.to_dict(), spec=asdict(self.spec),
                           run_id=run_id)
                    setup = w.read()
                    break
                except (UsageError, WorkerGone) as e:
                    failed_starts += 1
                    w.stop()
                    if failed_starts >= MAX_FAILED_STARTS:
                        raise UsageError(f"{e} ({MAX_FAILED_STARTS} starts in a row failed)"
                                         ) from None
            if "error" in setup:  # the passes cannot be made here: no point would run
                w.stop()
                raise UsageError(f"worker could not set up the sweep: {setup['error']}")
            lim = w.info.get("limit")
            self._log(f"worker {slot.index} (PID {w.pid}) ready"
                      + (f", memory limit {lim / 2**30:.1f} GiB of address space" if lim else ""))
            return w

        while queue or len(idle) < len(self._slots):
            while idle and queue:
                slot = idle.pop()
                point = queue.popleft()
                for _ in range(2):  # a worker that died while idle is replaced, once
                    if slot.worker is None or not slot.worker.alive():
                        slot.worker = fresh(slot)
                    try:
                        slot.worker.send(cmd="measure", point=asdict(point))
                        break
                    except WorkerGone:
                        slot.worker = None
                else:
                    raise UsageError("worker processes die before they can be given a point")
                slot.point = point
                if self.point_timeout:
                    slot.deadline = time.monotonic() + self.point_timeout
                started(point)
            busy = [s for s in self._slots if s.point is not None]
            if not any(s.worker.pending() for s in busy):
                wait([s.worker for s in busy], timeout=_until_first_deadline(busy))
            for slot in busy:
                rec = self._collect(slot, sweep) or self._expire(slot, sweep)
                if rec is not None:
                    failed_starts = 0
                    slot.point = slot.deadline = None
                    idle.append(slot)
                    yield rec

    def _collect(self, slot: _Slot, sweep):
        """The record the slot's worker finished, one made from its death, or None
        while it works."""
        from ..records import Record

        w = slot.worker
        try:
            reply = w.read(timeout=0)
        except WorkerGone as e:
            status = "oom" if e.oom_killed else "error"
            return self._lost_point(slot, sweep, status, f"{e} while measuring this point; "
                                    "a new worker took over")
        if reply is None:
            return None
        if "record" not in reply:  # a failure outside any point (a broken message)
            return self._lost_point(slot, sweep, "error", reply.get("error", str(reply)))
        if reply.get("last"):  # the worker hands back its point and exits
            w.stop()
            slot.worker = None
        return Record(**reply["record"])

    def _expire(self, slot: _Slot, sweep):
        """A row for the slot's point if it ran past --point-timeout (the worker is
        killed: a point stuck in a kernel cannot be interrupted any other way), else None."""
        if slot.deadline is None or time.monotonic() < slot.deadline:
            return None
        slot.worker.kill()
        reason = (f"timed out: still measuring after {self.point_timeout:g} s "
                  f"(--point-timeout); worker process {slot.worker.pid} was killed and a "
                  f"new worker took over")
        return self._lost_point(slot, sweep, "error", reason)

    def _lost_point(self, slot: _Slot, sweep, status: str, reason: str):
        """The row of a point whose worker is gone, stamped with that worker's machine."""
        from ..records import Record

        self._log(f"warning: {slot.point.key}: {reason}")
        rec = Record.for_point(slot.point, sweep, status=status, reason=reason)
        env = slot.worker.info.get("env") or {}
        rec.machine, rec.env = env.get("machine"), env
        slot.worker.stop()
        slot.worker = None
        return rec


def _until_first_deadline(busy: list[_Slot], poll_s: float = 5.0) -> float:
    """How long the driver may wait for a message before a deadline needs checking."""
    deadlines = [s.deadline for s in busy if s.deadline is not None]
    if not deadlines:
        return poll_s
    return max(0.0, min(poll_s, min(deadlines) - time.monotonic()))
