"""Errors: the one user-error type the CLI turns into a single line and exit code 2, and
the two questions every point-measuring place asks of any other exception."""
from __future__ import annotations

__all__ = ["Terminated", "UsageError", "is_oom", "one_line"]

#: Messages of allocation failures that do not raise torch.OutOfMemoryError: CPU
#: allocators ("can't allocate memory"), and cuBLAS / cuDNN failing to get a workspace.
_OOM_TEXTS = ("out of memory", "can't allocate memory", "CUBLAS_STATUS_ALLOC_FAILED",
              "CUDNN_STATUS_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE")


class UsageError(Exception):
    """Bad input from the user: an unknown family, a depth of 0, a foreign database...

    Raised anywhere in parabench; `parabench.cli` prints it as one line on stderr and
    exits with status 2, so a typo never produces a traceback.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the run is marked interrupted and nothing finished is
    lost); the CLI exits 143 for it, as a process killed by SIGTERM does, 130 for Ctrl-C."""


def is_oom(e: BaseException) -> bool:
    """Did this exception come from running out of memory (host or device)?"""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(t in text for t in _OOM_TEXTS)


def one_line(e: BaseException, limit: int = 500) -> str:
    """'Type: first line of the message', short enough for a table cell or a row."""
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}"[:limit]
