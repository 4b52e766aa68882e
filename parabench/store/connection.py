"""The database file itself: where it is by default, whether it is whole, how it is
opened (read-only without writing anything), and how SQLite's errors about it read
(one line naming the file)."""
from __future__ import annotations

import functools
import os
import sqlite3
import struct
from pathlib import Path

from ..errors import UsageError

BUSY_TIMEOUT_S = 60.0


class DamagedDatabase(UsageError):
    """The file is a parabench database, but SQLite cannot read it whole (malformed
    pages, a truncated file). `parabench check` reports it as damage (exit 1)."""


def default_db_path() -> Path:
    """$PARABENCH_DB, else results/parabench.db under the current directory."""
    return Path(os.environ.get("PARABENCH_DB") or Path("results") / "parabench.db")


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    kw = dict(timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    if not readonly:
        return sqlite3.connect(path, **kw)
    uri = "file:" + _uri_path(path.absolute())
    wal = Path(f"{path}-wal")
    if not wal.exists():
        # no -wal: no writer has the file open and every commit is in the main file;
        # immutable=1 reads it without creating -wal/-shm (mode=ro would create them)
        return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, **kw)
    conn = sqlite3.connect(uri + "?mode=ro", uri=True, **kw)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        # a WAL database in a read-only folder without its -shm cannot be opened
        # read-only by SQLite; read it as immutable (committed pages only)
        conn.close()
        return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, **kw)


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(path.as_posix(), safe="/:")


def _check_size(path: Path) -> None:
    """A file shorter than its header says (or not a whole number of pages) was
    truncated: refuse it in one line instead of failing at some later read."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
        size = path.stat().st_size
    except OSError:
        return
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        return  # not SQLite at all: the open refuses it with its own message
    page = struct.unpack(">H", head[16:18])[0]
    page = 65536 if page == 1 else page
    count, counter, valid_for = (struct.unpack(">I", head[o:o + 4])[0] for o in (28, 24, 92))
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return  # pages may live in the WAL; SQLite's own checks apply
    if page < 512 or size % page or (counter == valid_for and count and size < page * count):
        raise DamagedDatabase(
            f"database {path} is truncated or damaged: {size} bytes, its header "
            f"says {count} pages of {page}; run `parabench check --db {path}`")


def _usage_error(path: Path, e: Exception) -> UsageError:
    text = " ".join(str(e).split())
    text = text if len(text) <= 160 else text[:157] + "..."
    name = getattr(e, "sqlite_errorname", "") or ""
    if isinstance(e, UnicodeDecodeError) or "malformed" in text:
        pass  # damage, below
    elif name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return UsageError(f"database {path} is read-only: this command needs to "
                          f"write to it ({text})")
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or text == "database is locked":
        return UsageError(f"database {path} is busy ({text}); try again")
    return DamagedDatabase(f"database {path} is damaged or unreadable ({text}); "
                           f"run `parabench check --db {path}`")


def _guarded(method):
    """SQLite errors inside a Store method become one-line UsageErrors naming the file."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            raise _usage_error(self.path, e) from None

    return wrapper
