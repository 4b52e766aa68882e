"""The measuring process: the one worker that sweeps, counts and interleaved arms all
talk to (the driver's side is `channel.WorkerProcess`).

Started as `python -m parabench.executors.worker`, either on the driver's own import
path (a sweep, a count, an arm of this parabench) or with an exported checkout as
working directory and on PYTHONPATH (an interleaved arm of another commit), so that it
measures *that* commit's parabench and models. One JSON object per line each way; the
protocol owns the real stdout, anything printed goes to stderr (the driver's log).

    <- {"ready": true, "protocol": 2, "pid": n, "limit": bytes | null, "env": {...}}
       or {"error": "..."} when it cannot start
    -> {"cmd": "sweep", "sweep": Sweep.to_dict(), "spec": PassSpec fields, "run_id": id}
    <- {"ok": true}
    -> {"cmd": "measure", "point": {Point fields}}          one whole point
    <- {"record": {Record fields}, "last": bool}             last: this worker's CUDA
                                                             context is broken; it exits
    -> {"cmd": "build", "point": {...}, "sweep": {...}}      hold a point for turns
    <- {"per_call_ms": x, "evidence": {...}} | {"skipped": reason}
       | {"error": "...", "oom": bool}
    -> {"cmd": "time", "n": 20}
    <- {"samples": [ms, ...], "load": {...}} | {"error": "...", "oom": bool}
    -> {"cmd": "quit"} (or end of input)

"build" and "time" are protocol 1's messages, with keys added (how the point was run,
how loaded the machine was during the turn): commits whose worker was
`parabench/regress/worker.py` (protocol 1) can still be one arm of an interleaved run.

The memory guard (memory_guard.py) is applied once the heavy imports are done, with
the budget the driver passes in MEMORY_BUDGET_ENV; a worker pinned to one CPU (an
interleaved pair on CPU with one thread) is told which in CPU_ENV.
"""
from __future__ import annotations

import json
import os
import signal
import sys

__all__ = ["CPU_ENV", "MEMORY_BUDGET_ENV", "PROTOCOL", "TREE_ENV", "serve"]

#: Bumped when a message changes; drivers refuse a worker that speaks another.
PROTOCOL = 2
#: Bytes of address space this worker may add after its imports (unset: no guard).
MEMORY_BUDGET_ENV = "PARABENCH_MEMORY_BUDGET"
#: The CPU an interleaved pair is pinned to (CPU runs, one thread).
CPU_ENV = "PARABENCH_AB_CPU"
#: The source tree this worker must import parabench from (unset: wherever it is).
TREE_ENV = "PARABENCH_TREE"


class _Session:
    """What the messages of one driver build up: the sweep and its passes (for
    "measure"), and the point held open across "time" turns."""

    def __init__(self):
        from ..measure.prepare import HeldPoint

        self.held = HeldPoint()
        self.sweep = self.spec = self.store = None
        self.passes: list = []
        self.run_id = ""

    def start_sweep(self, msg: dict) -> dict:
        import torch

        from ..config import sweep_from_dict
        from .common import PassSpec

        self.sweep = sweep_from_dict(msg["sweep"])
        self.spec = PassSpec(**msg.get("spec") or {})
        self.run_id = msg.get("run_id") or ""
        if self.sweep.threads:
            torch.set_num_threads(self.sweep.threads)
        self.store = self.spec.open_store()
        self.passes = self.spec.build(self.sweep, self.store)
        return {"ok": True}

    def measure(self, msg: dict) -> tuple[dict, bool]:
        """(reply, last): one whole point as a record."""
        from dataclasses import asdict

        from ..config import Point
        from .common import measure_here, poisons_cuda

        if self.sweep is None:
            raise RuntimeError("no sweep sent before the first point")
        self.held.close()  # a point held for turns would count in this one's peak
        rec = measure_here(Point(**msg["point"]), self.sweep, spec=self.spec,
                           passes=self.passes, run_id=self.run_id, store=self.store)
        last = poisons_cuda(rec)
        if last:  # every later point here would fail: make way for a new worker
            rec.reason += "; this worker's CUDA context is unusable, a new worker takes over"
        return {"record": asdict(rec), "last": last}, last

    def build(self, msg: dict) -> dict:
        from ..config import Point, sweep_from_dict
        from ..measure.prepare import PointUnsupported
        from ..measure.timing import measure
        from .common import inject_fault

        point, sweep = Point(**msg["point"]), sweep_from_dict(msg["sweep"])
        inject_fault(point.key)
        try:
            prep = self.held.open(point, sweep)
        except PointUnsupported as e:
            return {"skipped": str(e)}
        warm = measure(prep.step, device=sweep.device, warmup=max(1, sweep.warmup),
                       warmup_s=sweep.warmup_s, min_samples=3, max_samples=3, min_time_s=0)
        return {"per_call_ms": sorted(warm)[1], "evidence": prep.evidence()}

    def time(self, n: int) -> dict:
        import torch

        from ..measure.load import LoadWindow
        from ..measure.timing import measure

        prep = self.held.prep
        if prep is None:
            return {"error": "RuntimeError: no point built"}
        # warmed when built (by time too), and turns follow each other closely: a turn
        # is timed at once. The other arms wait while this one takes its turn, so what
        # other processes did meanwhile is the machine's load, not theirs.
        with LoadWindow(prep.sweep.threads or torch.get_num_threads()) as load:
            samples = measure(prep.step, device=prep.device, warmup=0, warmup_s=0.0,
                              min_samples=n, max_samples=n, min_time_s=0)
        return {"samples": samples, "load": load.result()}

    def close(self) -> None:
        self.held.close()


def serve(inp, reply) -> None:
    """Answer the driver's messages from `inp` until "quit" or end of input."""
    from ..errors import is_oom, one_line

    session = _Session()
    try:
        for line in inp:
            msg = json.loads(line)
            cmd = msg.get("cmd")
            try:
                if cmd == "sweep":
                    reply(**session.start_sweep(msg))
                elif cmd == "measure":
                    answer, last = session.measure(msg)
                    reply(**answer)
                    if last:
                        os._exit(3)
                elif cmd == "build":
                    reply(**session.build(msg))
                elif cmd == "time":
                    reply(**session.time(int(msg["n"])))
                else:
                    return
            except Exception as e:  # noqa: BLE001 (every failure is a reply, then a row)
                session.close()  # frees the point's memory before the next one
                reply(error=one_line(e, 300), oom=is_oom(e))
    finally:
        session.close()


def _start() -> dict:
    """Import the heavy parts, apply the memory guard, say who this worker is."""
    import paraformer  # noqa: F401  the heavy imports first, so the guard counts them
    import timm  # noqa: F401
    import torch  # noqa: F401

    import parabench

    from ..measure.device import settle_heap
    from .common import worker_environment
    from .memory_guard import apply_limit

    tree = os.environ.get(TREE_ENV)
    if tree and not os.path.realpath(parabench.__file__).startswith(
            os.path.realpath(tree) + os.sep):
        raise RuntimeError(f"parabench imported from {parabench.__file__}, not from {tree}")
    budget = os.environ.get(MEMORY_BUDGET_ENV)
    limit = apply_limit(int(budget)) if budget else None
    env = worker_environment()
    settle_heap()  # the imports' objects out of each point's garbage collection
    return {"ready": True, "protocol": PROTOCOL, "pid": os.getpid(), "limit": limit,
            "env": env}


def _plain(value):
    """JSON for what a record may hold beyond plain types: numpy scalars as numbers,
    anything else as its text (as the store writes `extra`)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def main() -> int:
    # The protocol owns the real stdout: it moves to a descriptor of its own, and fd 1
    # becomes stderr, so nothing printed here, by a C library or by a child process
    # (valgrind under a count) can land in a reply.
    sys.stdout.flush()
    chan = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle

    def reply(**msg) -> None:
        try:
            chan.write(json.dumps(msg, default=_plain) + "\n")
            chan.flush()
        except OSError:  # the driver is gone (killed, hung up): leave silently
            os._exit(0)

    try:
        hello = _start()
    except Exception as e:  # noqa: BLE001  say why; the driver refuses in one line
        from ..errors import one_line

        reply(error=one_line(e, 300))
        return 1
    cpu = os.environ.get(CPU_ENV)
    if cpu and hasattr(os, "sched_setaffinity"):
        # every arm on one core: the same neighbours. Pinned after the imports, so that
        # arms starting together import on every core, not one after another on one
        os.sched_setaffinity(0, {int(cpu)})
    reply(**hello)
    serve(sys.stdin, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
