"""The `process` executor: long-lived worker processes that measure points sent to them.

Why processes: on a GPU, an illegal memory access or a device-side assert leaves the
CUDA context unusable for the rest of the process, and a segfault in a kernel ends it;
only a new process recovers. So a worker that dies takes only its point with it: the
point becomes an `error` row (or `oom` when the kernel's OOM killer ended it) with the
reason, a new worker replaces it, and the sweep goes on.

One worker per GPU on CUDA (each sees one device through CUDA_VISIBLE_DEVICES), one on
CPU (points measured side by side on a 2-core machine would disturb each other's
timing); `workers` overrides both. Each worker imports torch once and then measures
point after point, so the start-up cost is paid once per worker, not per point. Workers
are started with `spawn`: a fresh interpreter, never a fork of a driver that may hold a
CUDA context. Memory guard: see memory_guard.py.
"""
from __future__ import annotations

import os
import signal
import time
from collections import deque
from contextlib import contextmanager

from ..errors import UsageError, one_line

__all__ = ["ProcessExecutor"]

#: How long a new worker may take to import torch and report ready.
START_TIMEOUT_S = 300.0
#: A worker that dies this many times in a row before measuring anything is broken.
MAX_FAILED_STARTS = 3


def _worker_main(conn, budget: int | None) -> None:
    """The worker's loop (see `_serve`). A worker whose driver died (killed, hung up)
    finds its pipe closed: it exits at once and silently, never with a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    try:
        _serve(conn, budget)
    except (EOFError, OSError):  # the driver is gone: EOF, broken pipe, reset
        os._exit(0)


def _serve(conn, budget: int | None) -> None:
    """("sweep", sweep, spec, run_id) once, then ("point", point)s; answers ("ready",
    info) once and ("record", Record) per point, or ("last", Record) when the point
    broke its CUDA context and the worker exits after it."""
    try:
        import paraformer  # noqa: F401  the heavy imports first, so the limit counts them
        import timm  # noqa: F401
        import torch

        from ..measure.device import settle_heap
        from .common import measure_here, poisons_cuda, worker_environment
        from .memory_guard import apply_limit

        limit = apply_limit(budget) if budget else None
        env = worker_environment()
        settle_heap()  # the imports' objects out of each point's garbage collection
    except Exception as e:  # noqa: BLE001  say why, the driver refuses in one line
        conn.send(("failed", one_line(e)))
        return
    conn.send(("ready", {"pid": os.getpid(), "limit": limit, "env": env}))
    sweep = passes = store = None
    run_id = ""
    while True:
        msg = conn.recv()
        if msg[0] == "sweep":
            _, sweep, spec, run_id = msg
            if sweep.threads:
                torch.set_num_threads(sweep.threads)
            store = spec.open_store()
            passes = spec.build(sweep, store)
        elif msg[0] == "point":
            rec = measure_here(msg[1], sweep, passes=passes, run_id=run_id, store=store)
            if poisons_cuda(rec):  # every later point here would fail: make way for a new one
                rec.reason += "; this worker's CUDA context is unusable, a new worker takes over"
                conn.send(("last", rec))
                os._exit(3)
            conn.send(("record", rec))
        else:
            return


@contextmanager
def _environ(changes: dict):
    """os.environ with `changes` while a worker is spawned (it inherits them)."""
    old = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Worker:
    def __init__(self, ctx, slot: int, budget: int | None, environ: dict):
        self.slot = slot
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, budget), daemon=True,
                                name=f"parabench-worker-{slot}")
        with _environ(environ):
            self.proc.start()
        child.close()
        self.conn = parent
        self.info: dict = {}
        self.point = None
        self.oom_kills_at_start = None
        self.deadline: float | None = None  # time.monotonic() by which the point must end

    def wait_ready(self) -> None:
        if not self.conn.poll(START_TIMEOUT_S):
            raise UsageError(f"worker process {self.proc.pid} did not start within "
                             f"{START_TIMEOUT_S:.0f} s")
        try:
            kind, info = self.conn.recv()
        except EOFError:
            self.proc.join(5)
            raise UsageError(f"worker process died while starting "
                             f"({_exit_text(self.proc.exitcode)})") from None
        if kind != "ready":
            raise UsageError(f"worker process could not start: {info}")
        self.info = info

    def stop(self) -> None:
        try:
            self.conn.send(("quit",))
        except (OSError, ValueError):
            pass
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit status {code}"


class ProcessExecutor:
    name = "process"

    def __init__(self, passes, *, workers: int | None = None, memory_limit: int | None = None,
                 point_timeout: float | None = None, log=print):
        self._spec = passes
        self._workers_wanted = workers
        self._memory_limit = memory_limit
        self._point_timeout = point_timeout
        self._log = log
        self._workers: list[_Worker] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for w in self._workers:
            if w is not None:
                w.stop()
        self._workers = []

    # -- plan -------------------------------------------------------------------------
    def _slots(self, sweep) -> list[dict]:
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

        if sweep.device == "cuda":
            if self._memory_limit:
                self._log("note: --memory-limit is not applied on CUDA (the driver reserves "
                          "more address space than any limit); GPU allocations fail cleanly")
            return None
        return self._memory_limit or default_budget(n)

    # -- running ----------------------------------------------------------------------
    def run(self, points, sweep, *, run_id: str, store=None, started=lambda p: None):
        import multiprocessing
        from multiprocessing.connection import wait

        from .memory_guard import oom_kills

        ctx = multiprocessing.get_context("spawn")
        slots = self._slots(sweep)[:max(1, len(points))]
        budget = self._budget(sweep, len(slots))
        queue = deque(points)
        failed_starts = 0
        idle: list[int] = list(range(len(slots)))
        self._workers = [None] * len(slots)

        def fresh(slot: int) -> _Worker:
            nonlocal failed_starts
            w = _Worker(ctx, slot, budget, slots[slot])
            try:
                w.wait_ready()
            except UsageError:
                failed_starts += 1
                w.stop()
                if failed_starts >= MAX_FAILED_STARTS:
                    raise
                return fresh(slot)
            w.conn.send(("sweep", sweep, self._spec, run_id))
            lim = w.info.get("limit")
            self._log(f"worker {slot} (PID {w.info['pid']}) ready"
                      + (f", memory limit {lim / 2**30:.1f} GiB of address space" if lim else ""))
            return w

        while queue or len(idle) < len(slots):
            while idle and queue:
                slot = idle.pop()
                w = self._workers[slot]
                point = queue.popleft()
                for _ in range(2):  # a worker that died while idle is replaced, once
                    if w is None or not w.proc.is_alive():
                        w = self._workers[slot] = fresh(slot)
                    try:
                        w.conn.send(("point", point))
                        break
                    except OSError:
                        w.proc.join(5)
                        w = None
                else:
                    raise UsageError("worker processes die before they can be given a point")
                w.point, w.oom_kills_at_start = point, oom_kills()
                if self._point_timeout:
                    w.deadline = time.monotonic() + self._point_timeout
                started(point)
            busy = [w for w in self._workers if w is not None and w.point is not None]
            wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                 timeout=_until_first_deadline(busy))
            for w in busy:
                rec = self._collect(w, sweep) or self._expire(w, sweep)
                if rec is not None:
                    failed_starts = 0
                    w.point = w.deadline = None
                    idle.append(w.slot)
                    yield rec

    def _collect(self, w: _Worker, sweep):
        """The record `w` finished, one made from its death, or None while it works."""
        from .memory_guard import oom_kills

        try:
            if w.conn.poll():
                kind, rec = w.conn.recv()
                if kind == "last":  # the worker hands back its point and exits
                    w.proc.join(10)
                    w.conn.close()
                    self._workers[w.slot] = None
                return rec
        except (EOFError, OSError):
            pass
        if w.proc.is_alive():
            return None
        w.proc.join(5)
        code = w.proc.exitcode
        kills_now = oom_kills()
        oom_killed = (code == -signal.SIGKILL and kills_now is not None
                      and w.oom_kills_at_start is not None and kills_now > w.oom_kills_at_start)
        reason = (f"worker process {w.info.get('pid')} ended ({_exit_text(code)}) while "
                  f"measuring this point" + ("; the kernel's OOM killer ended it" if oom_killed else "")
                  + "; a new worker took over")
        return self._lost_point(w, sweep, "oom" if oom_killed else "error", reason)

    def _expire(self, w: _Worker, sweep):
        """A row for `w`'s point if it ran past --point-timeout (the worker is killed:
        a point stuck in a kernel cannot be interrupted any other way), else None."""
        if w.deadline is None or time.monotonic() < w.deadline:
            return None
        w.proc.kill()
        w.proc.join(10)
        reason = (f"timed out: still measuring after {self._point_timeout:g} s "
                  f"(--point-timeout); worker process {w.info.get('pid')} was killed and a "
                  f"new worker took over")
        return self._lost_point(w, sweep, "error", reason)

    def _lost_point(self, w: _Worker, sweep, status: str, reason: str):
        """The row of a point whose worker is gone, stamped with that worker's machine."""
        from ..records import Record

        self._log(f"warning: {w.point.key}: {reason}")
        rec = Record.for_point(w.point, sweep, status=status, reason=reason)
        env = w.info.get("env") or {}
        rec.machine, rec.env = env.get("machine"), env
        w.conn.close()
        self._workers[w.slot] = None
        return rec


def _until_first_deadline(busy: list[_Worker], poll_s: float = 5.0) -> float:
    """How long the driver may wait for a message before a deadline needs checking."""
    deadlines = [w.deadline for w in busy if w.deadline is not None]
    if not deadlines:
        return poll_s
    return max(0.0, min(poll_s, min(deadlines) - time.monotonic()))
