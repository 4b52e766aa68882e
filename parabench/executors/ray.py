"""The `ray` executor: each point a Ray task, on a running cluster or a local one.

The driver (the `parabench run` process) submits every point as a task that asks for
what it needs (one GPU on CUDA, `threads` CPUs on CPU), collects results with `ray.wait`
as they finish, and hands them to the runner, which alone writes the store. A task
whose worker or node dies is not retried (a retry would measure the point again under
different conditions): it becomes an `error` row with Ray's reason, or `oom` when Ray's
memory monitor killed it. Every machine needs the same parabench checkout and venv;
each record carries the environment of the worker that measured it.

Ray is imported only here, and only when this executor is chosen.
"""
from __future__ import annotations

import os

from ..errors import UsageError, one_line

__all__ = ["RayExecutor"]


def _measure_task(point, sweep, spec, run_id):
    """Runs inside a Ray worker process: measure one point there."""
    import torch

    from .common import measure_here

    # no settle_heap() here: Ray's own objects live in this process, and a frozen heap
    # in a Ray driver lost a task's result (see measure/device.py)
    if sweep.threads:
        torch.set_num_threads(sweep.threads)
    store = spec.open_store()
    try:
        return measure_here(point, sweep, spec=spec, passes=spec.build(sweep, store),
                            run_id=run_id, store=store)
    finally:
        if store is not None:
            store.close()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse in one line, at once, a host:port where nothing listens: ray.init would
    retry such an address for minutes before giving up."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' and other forms: left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise UsageError(f"no Ray cluster answers at {address} ({e.strerror or e}); start one "
                         f"with `ray start --head` or leave out --ray-address for a local one"
                         ) from None


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed: "
                         "pip install -e '.[ray]'") from None
    return ray


class RayExecutor:
    name = "ray"

    def __init__(self, passes, *, address: str | None = None, workers: int | None = None,
                 log=print):
        self.spec = passes
        self._address = address
        self._workers = workers
        self._log = log
        self._ray = None

    def __enter__(self):
        ray = self._ray = import_ray()
        if ray.is_initialized():
            return self
        kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        # Ray's workers import parabench as the driver does, and see its PARABENCH_ settings
        forward = {k: v for k, v in os.environ.items()
                   if k == "PYTHONPATH" or k.startswith("PARABENCH_")}
        if forward:
            kw["runtime_env"] = {"env_vars": forward}
        if self._address:
            _check_reachable(self._address)
        try:
            if self._address:
                ray.init(address=self._address, **kw)
            else:
                ray.init(num_cpus=self._workers or os.cpu_count(), **kw)
        except Exception as e:  # noqa: BLE001  a cluster that cannot be reached: one line
            raise UsageError(f"cannot start or reach a Ray cluster"
                             f"{' at ' + self._address if self._address else ''}: "
                             f"{one_line(e)}") from None
        res = ray.cluster_resources()
        self._log(f"Ray cluster: {len(ray.nodes())} node(s), {res.get('CPU', 0):g} CPUs, "
                  f"{res.get('GPU', 0):g} GPUs" + ("" if self._address else " (local, for this run)"))
        return self

    def __exit__(self, *exc):
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()  # the driver only; a cluster we did not start keeps running

    def run(self, points, sweep, *, run_id: str, store=None, started=lambda p: None):
        ray = self._ray
        cuda = sweep.device == "cuda"
        if cuda and not ray.cluster_resources().get("GPU"):
            raise UsageError("the Ray cluster has no GPUs, and the sweep asks for --device cuda")
        task = ray.remote(_measure_task).options(
            num_cpus=sweep.threads or 1, num_gpus=1 if cuda else 0, max_retries=0,
            name="parabench-point")
        pending = {}
        try:
            for point in points:
                pending[task.remote(point, sweep, self.spec, run_id)] = point
                started(point)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield self._result(ray, ref, pending.pop(ref), sweep)
        finally:
            for ref in pending:  # interrupted: leave no task measuring for nobody
                ray.cancel(ref, force=True)

    def _result(self, ray, ref, point, sweep):
        from ..errors import is_oom
        from ..records import Record

        try:
            return ray.get(ref)
        except Exception as e:  # noqa: BLE001  a dead worker/node: a row, and go on
            oom = is_oom(e) or type(e).__name__ == "OutOfMemoryError"
            reason = f"Ray task failed: {one_line(e)}"
            self._log(f"warning: {point.key}: {reason}")
            return Record.for_point(point, sweep, status="oom" if oom else "error",
                                    reason=reason)
