"""The driver's side of a worker process (`executors/worker.py`): the one place that
starts a worker, speaks to it, and turns its death or a hang into a reason.

Every schedule goes through `WorkerProcess`: the process executor (a sweep's points,
or counts), and each arm of an interleaved run. A worker is a plain subprocess running
`python -m <module>` with pipes, so it can run another commit's code: with `tree`, the
exported checkout is its working directory and its PYTHONPATH; without, it inherits
this interpreter's import path. Spawned fresh (never forked), so it never inherits a
CUDA context, and in the driver's process group, so whoever kills the driver's group
(a time limit) kills its workers too; Ctrl-C is ignored by the worker and handled by
the driver.

Replies are read from a raw pipe with a deadline: a worker that dies closes the pipe
(WorkerGone, with its exit status and whether the kernel's OOM killer ended it), one
that outlives its deadline is killed (WorkerTimedOut).
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import UsageError
from .memory_guard import oom_kills
from .worker import CPU_ENV, MEMORY_BUDGET_ENV, TREE_ENV

__all__ = ["WORKER_MODULE", "WorkerGone", "WorkerProcess", "WorkerTimedOut", "exit_text"]

#: The worker every schedule starts, and its file inside a checkout.
WORKER_MODULE = "parabench.executors.worker"
#: How long a new worker may take to import torch and say it is ready.
START_TIMEOUT_S = 300.0


class WorkerGone(Exception):
    """The worker ended (crashed, killed) before it answered; `str()` says how."""

    def __init__(self, reason: str, oom_killed: bool = False):
        super().__init__(reason)
        self.oom_killed = oom_killed


class WorkerTimedOut(Exception):
    """The worker did not answer by its deadline and was killed."""


def exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit status {code}"


class WorkerProcess:
    """One worker process and its line-by-line JSON pipes."""

    def __init__(self, label: str, *, tree: str | Path | None = None, python: str | None = None,
                 module: str = WORKER_MODULE, budget: int | None = None, cpu: int | None = None,
                 environ: dict | None = None, log_path: str | Path | None = None):
        env = dict(os.environ)
        env.update(environ or {})
        if tree is not None:
            tree = Path(tree)
            env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "models")])
            env[TREE_ENV] = str(tree)
        else:  # this parabench, found where this interpreter finds it
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
            env.pop(TREE_ENV, None)
        for name, value in ((MEMORY_BUDGET_ENV, budget), (CPU_ENV, cpu)):
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        self.label = label
        self.info: dict = {}
        self._log = open(log_path, "w") if log_path else None  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", module], cwd=tree, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )
        self._buf = b""
        self._oom_kills_at_send: int | None = None

    # -- the conversation --------------------------------------------------------------
    def hello(self, timeout: float = START_TIMEOUT_S) -> dict:
        """The worker's first message; UsageError (one line) if it cannot start."""
        try:
            msg = self.read(timeout)
        except WorkerGone as e:
            raise UsageError(f"worker for {self.label} died while starting ({e})"
                             + self._log_tail()) from None
        if msg is None:
            self.kill()
            raise UsageError(f"worker for {self.label} did not start within {timeout:.0f} s")
        if "error" in msg:
            raise UsageError(f"worker for {self.label} could not start: {msg['error']}")
        self.info = msg
        return msg

    def send(self, **msg) -> None:
        """Send one message; WorkerGone if the worker is not there to take it."""
        self._oom_kills_at_send = oom_kills()
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):
            raise self._gone() from None

    def read(self, timeout: float | None = None) -> dict | None:
        """The next message, waiting at most `timeout` seconds (None: no limit); None
        if none came in time; WorkerGone when the worker ended first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                raise self._gone()
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise WorkerGone(f"worker {self.pid} sent a garbled reply: {line[:80]!r}") from None

    def ask(self, timeout: float | None = None, **msg) -> dict:
        """Send `msg` and return the reply; WorkerTimedOut (the worker killed) when none
        comes within `timeout` seconds, WorkerGone when the worker died."""
        self.send(**msg)
        reply = self.read(timeout)
        if reply is None:
            self.kill()
            raise WorkerTimedOut(f"no answer within {timeout:g} s; worker {self.pid} was "
                                 "killed")
        return reply

    # -- its life ----------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.proc.pid

    def fileno(self) -> int:
        """For `select`/`multiprocessing.connection.wait` on its replies."""
        return self.proc.stdout.fileno()

    def pending(self) -> bool:
        """A whole reply is already buffered (select would not show it)."""
        return b"\n" in self._buf

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """Ask the worker to quit; kill it if it does not within a few seconds."""
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout, self._log):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass

    def _gone(self) -> WorkerGone:
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        code = self.proc.returncode
        now = oom_kills()
        oom = (code == -signal.SIGKILL and now is not None
               and self._oom_kills_at_send is not None and now > self._oom_kills_at_send)
        return WorkerGone(f"worker process {self.pid} ended ({exit_text(code)})"
                          + ("; the kernel's OOM killer ended it" if oom else ""),
                          oom_killed=oom)

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        tail = Path(self._log.name).read_text(errors="replace").strip()[-600:]
        return f":\n{tail}" if tail else ""
