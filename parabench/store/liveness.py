"""How a running run is told apart from a dead one: a running sweep stamps its run as
alive every HEARTBEAT_S seconds (`Heartbeat`), and a "running" run whose stamp is
stale, or whose process is gone from this host, reads as interrupted (`_live_status`)."""
from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from ..errors import UsageError

#: A running sweep stamps runs.heartbeat_at this often (a thread, see `Heartbeat`) ...
HEARTBEAT_S = 10.0
#: ... and a "running" run whose stamp is older than this, or whose process is gone from
#: this host, is shown as interrupted: a killed run must not read "running" forever.
STALE_AFTER_S = 6 * HEARTBEAT_S


def _live_status(run: dict) -> dict:
    """A `runs` row with a dead "running" run shown as interrupted: its heartbeat is
    older than STALE_AFTER_S, or its driver's PID is gone from this very host. Rows
    from before version 3 have no heartbeat and keep their stored status."""
    if run.get("status") != "running" or not run.get("heartbeat_at"):
        return run
    why = None
    if run.get("host") == socket.gethostname() and run.get("pid") and not _pid_alive(run["pid"]):
        why = f"its process {run['pid']} on {run['host']} is gone"
    else:
        try:
            age = (datetime.now(UTC) - datetime.fromisoformat(run["heartbeat_at"])).total_seconds()
        except (TypeError, ValueError):
            age = None
        if age is not None and age > STALE_AFTER_S:
            why = f"no heartbeat from {run.get('host')} (PID {run.get('pid')}) for {age:.0f} s"
    if why:
        run = {**run, "status": "interrupted", "stale": why}
    return run


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a PID we can ask about: assume alive
    return True


class Heartbeat:
    """Stamps running runs as alive every HEARTBEAT_S seconds from a thread, on its
    own connection (the measuring thread may be busy for minutes inside one point).
    An interleaved run keeps one run per arm alive, so it takes several ids."""

    def __init__(self, path: Path, *run_ids: str):
        import threading

        self._path, self._run_ids = path, run_ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="parabench-heartbeat",
                                        daemon=True)

    def _beat(self) -> None:
        from .database import Store  # here, not at import: the database imports this module

        store = None
        while not self._stop.wait(HEARTBEAT_S):
            try:
                store = store or Store(self._path, create=False)
                for run_id in self._run_ids:
                    store.heartbeat(run_id)
            except UsageError:
                pass  # busy or gone: the next beat tries again; staleness is only a display
        if store is not None:
            store.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
