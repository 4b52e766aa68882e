"""Where parabench writes files: checked before any work starts, refused in one line.

A sweep can take an hour; finding out at its end that the trace folder cannot be
written, or that `-o` names a directory, loses that hour. So every output location is
checked (and a folder created) up front, and a write that still fails becomes a
UsageError rather than a traceback.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .errors import UsageError

__all__ = ["check_output_file", "prepare_output_dir", "safe_name", "write_output"]

#: Run ids and point keys become folder names; only these characters may.
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~=-]*")


def safe_name(name: str, what: str = "run id") -> str:
    """`name` if it can be one path component (no '/', '..', leading dot); else refuse.
    A database written by someone else may hold any run id."""
    if not isinstance(name, str) or not _SAFE.fullmatch(name) or ".." in name:
        raise UsageError(f"{what} {name!r} cannot be used as a file name "
                         "(letters, digits and . _ + ~ = - only)")
    return name


def check_output_file(path: Path, flag: str = "--out") -> Path:
    """Refuse a file path that cannot be written: an existing directory, or a place
    whose nearest existing folder is not a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory; name a file")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot create files under {parent}")
    return path


def prepare_output_dir(path: Path, flag: str = "--out") -> Path:
    """Create the folder (and its parents) and prove it is writable with a probe file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".parabench-probe-"):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write there ({e.strerror or e})") from None
    return path


def write_output(path: Path, text: str, flag: str = "--out") -> None:
    """Write `text` to `path`, creating its folder; a failure is one line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write ({e.strerror or e})") from None
