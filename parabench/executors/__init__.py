"""Where a point runs. The runner decides what to measure and alone writes the store;
an executor only runs points and hands back one Record per point, in the order they
finish, each stamped with the environment of the worker that measured it.

- `inline`: in the `parabench run` process itself (no start-up cost, no isolation).
- `process`: long-lived worker processes, one per GPU (or per requested slot), each
  under a memory guard; a worker that dies, or outlives `--point-timeout` on a point,
  turns its point into a row and is replaced.
- `ray`: each point a Ray task with the resources it needs, on a local or remote cluster.

Only the chosen executor's module is imported (Ray only when asked for).
"""
from __future__ import annotations

from .common import PassSpec

__all__ = ["EXECUTORS", "PassSpec", "default_executor", "make_executor"]

EXECUTORS = ("inline", "process", "ray")


def default_executor(device: str) -> str:
    """`process` everywhere: on CUDA a bad point can poison the context, and on CPU the
    memory guard turns a runaway batch into an `oom` row instead of the kernel's OOM
    killer. Its start-up (one import of torch per worker) keeps the quick preset well
    within its minute here (figures in the README)."""
    return "process"


def make_executor(name: str, *, passes: PassSpec | None = None, workers: int | None = None,
                  memory_limit: int | None = None, ray_address: str | None = None,
                  point_timeout: float | None = None, log=print):
    """The executor `name` (one of EXECUTORS), not yet started (use it as a context)."""
    passes = passes or PassSpec()
    if name == "inline":
        from .inline import InlineExecutor

        return InlineExecutor(passes)
    if name == "process":
        from .process import ProcessExecutor

        return ProcessExecutor(passes, workers=workers, memory_limit=memory_limit,
                               point_timeout=point_timeout, log=log)
    if name == "ray":
        from .ray import RayExecutor

        return RayExecutor(passes, address=ray_address, workers=workers, log=log)
    raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
