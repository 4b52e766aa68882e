"""The measuring process of one side of an interleaved comparison.

`interleave.interleaved_runs` starts one of these per checkout, as
`python -m parabench.regress.worker` with the exported checkout as working directory
and on PYTHONPATH, so that it measures *that* commit's parabench and models. It then
drives it line by line, one JSON object per line each way:

    <- {"ready": true, "protocol": 1, "env": {...}}   (or {"error": "..."})
    -> {"cmd": "build", "point": {Point fields}, "sweep": Sweep.to_dict()}
    <- {"per_call_ms": 1.23} | {"skipped": reason} | {"error": "...", "oom": bool}
    -> {"cmd": "time", "n": 20}
    <- {"samples": [ms, ...]} | {"error": "...", "oom": bool}
    -> {"cmd": "quit"} (or end of input)

A built point stays alive across the "time" messages that follow it and is freed
(by `measure.prepare.prepared`'s exit) when the next point is built or the worker ends.
The protocol owns the real stdout; anything printed goes to stderr (the driver's log).
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack

__all__ = ["PROTOCOL", "main"]

#: Bumped when a message changes; the driver refuses a worker that speaks another.
PROTOCOL = 1
#: Environment variable naming the CPU both sides are pinned to (CPU runs, 1 thread).
CPU_ENV = "PARABENCH_AB_CPU"


class _Point:
    """The point being measured: its `prepared` context, kept open across "time"s."""

    def __init__(self):
        self.stack = ExitStack()
        self.prep = None

    def build(self, msg: dict) -> dict:
        from ..config import Point, sweep_from_dict
        from ..measure.prepare import PointUnsupported, prepared
        from ..measure.timing import measure

        self.close()
        point, sweep = Point(**msg["point"]), sweep_from_dict(msg["sweep"])
        try:
            self.prep = self.stack.enter_context(prepared(point, sweep))
        except PointUnsupported as e:
            return {"skipped": str(e)}
        warm = measure(self.prep.step, device=sweep.device, warmup=max(1, sweep.warmup),
                       warmup_s=sweep.warmup_s, min_samples=3, max_samples=3, min_time_s=0)
        return {"per_call_ms": sorted(warm)[1]}

    def time(self, n: int) -> dict:
        from ..measure.timing import measure

        if self.prep is None:
            return {"error": "RuntimeError: no point built"}
        # warmed when built (by time too), and turns follow each other closely: a turn
        # is timed at once
        return {"samples": measure(self.prep.step, device=self.prep.device, warmup=0,
                                   warmup_s=0.0, min_samples=n, max_samples=n, min_time_s=0)}

    def close(self) -> None:
        self.prep = None
        self.stack.close()
        self.stack = ExitStack()


def _environment() -> dict:
    try:
        from ..environment import collect

        return collect()
    except Exception as e:  # noqa: BLE001 (any failure: measure anyway, say why)
        import torch

        return {"machine": None, "torch": torch.__version__, "error": repr(e)}


def serve(inp, reply) -> None:
    """Answer the driver's messages from `inp` until "quit" or end of input."""
    from ..errors import is_oom, one_line

    point = _Point()
    try:
        for line in inp:
            msg = json.loads(line)
            try:
                if msg["cmd"] == "build":
                    reply(**point.build(msg))
                elif msg["cmd"] == "time":
                    reply(**point.time(int(msg["n"])))
                else:
                    return
            except Exception as e:  # noqa: BLE001 (every failure is a reply, then a row)
                point.close()  # frees the point's memory before the next one
                reply(error=one_line(e, 300), oom=is_oom(e))
    finally:
        point.close()


def main() -> int:
    chan, sys.stdout = sys.stdout, sys.stderr  # the protocol owns the real stdout

    def reply(**msg) -> None:
        try:
            chan.write(json.dumps(msg) + "\n")
            chan.flush()
        except OSError:  # the driver is gone (killed, hung up): leave silently
            os._exit(0)

    cpu = os.environ.get(CPU_ENV)
    if cpu and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu)})  # both sides on one core: same neighbours
    import parabench

    here = os.path.realpath(os.getcwd())
    if not os.path.realpath(parabench.__file__).startswith(here + os.sep):
        reply(error=f"parabench imported from {parabench.__file__}, not from {here}")
        return 1
    reply(ready=True, protocol=PROTOCOL, env=_environment())
    serve(sys.stdin, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
