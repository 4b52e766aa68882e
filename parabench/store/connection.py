"""The database file itself: where it is by default, whether it is whole, how it is
opened (read-only without writing anything) and closed (a writer checkpoints), and how
SQLite's errors about it read (one line naming the file)."""
from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import struct
import tempfile
import threading
from collections import Counter
from pathlib import Path

from ..errors import UsageError

BUSY_TIMEOUT_S = 60.0


class DamagedDatabase(UsageError):
    """The file is a parabench database, but SQLite cannot read it whole (malformed
    pages, a truncated file). `parabench check` reports it as damage (exit 1)."""


def default_db_path() -> Path:
    """$PARABENCH_DB, else results/parabench.db under the current directory."""
    return Path(os.environ.get("PARABENCH_DB") or Path("results") / "parabench.db")


_KW = dict(timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)


def _connect(path: Path, readonly: bool, notes: list) -> tuple[sqlite3.Connection, str | None]:
    """(connection, temporary folder to remove at close or None). What a read-only open
    cannot see is added to `notes`."""
    if not readonly:
        return sqlite3.connect(path, **_KW), None
    wal = Path(f"{path}-wal")
    if not wal.exists():
        # no -wal: no writer has the file open and every commit is in the main file;
        # immutable=1 reads it without creating -wal/-shm (mode=ro would create them)
        return _open_ro(path, immutable=True), None
    conn = _open_ro(path, immutable=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, None
    except sqlite3.OperationalError:
        conn.close()
    # a WAL database in a read-only folder without its -shm: SQLite can read only the
    # main file (immutable), not the commits in the -wal. A copy of both in a private
    # folder reads them all; failing that, the main file alone, said out loud.
    copy = tempfile.mkdtemp(prefix="parabench-ro-")
    try:
        shutil.copyfile(path, Path(copy) / path.name)
        shutil.copyfile(wal, Path(copy) / wal.name)
        return _open_ro(Path(copy) / path.name, immutable=False), copy
    except (OSError, sqlite3.Error) as e:
        shutil.rmtree(copy, ignore_errors=True)
        notes.append(f"{path}: its write-ahead log {wal.name} cannot be read here ({e}); "
                     "showing only what the main file holds, commits after it are missing")
        return _open_ro(path, immutable=True), None


def _open_ro(path: Path, immutable: bool) -> sqlite3.Connection:
    uri = "file:" + _uri_path(path.absolute()) + "?mode=ro" + ("&immutable=1" if immutable else "")
    return sqlite3.connect(uri, uri=True, **_KW)


def _close_quietly(conn, *, checkpoint: bool, copy: str | None) -> None:
    """Close `conn` (None: nothing); a writer first copies the write-ahead log into the
    database file, so that the file alone is complete (a user may copy just the `.db`).
    A busy checkpoint (another writer) is left to that writer: it does the same."""
    if conn is not None:
        try:
            if checkpoint:
                conn.execute("PRAGMA busy_timeout=2000")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            pass
        finally:
            conn.close()
    if copy:
        shutil.rmtree(copy, ignore_errors=True)


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(path.as_posix(), safe="/:")


#: (device, inode) -> how many Stores of this process have the file open. POSIX drops
#: every lock a process holds on a file when the process closes any descriptor of it
#: (SQLite's "How To Corrupt Your Database Files", 2.2). Reading the header with open()
#: while a connection of this process held the file (the heartbeat's second Store did)
#: dropped that connection's lock: another process closing its own connection then took
#: itself for the last one, checkpointed and deleted the write-ahead log under the
#: writer, and the database came out malformed. So the header is read only by the first.
_HELD: Counter = Counter()
_HELD_LOCK = threading.Lock()  # the heartbeat's thread opens and closes Stores too


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def held_here(path: Path) -> bool:
    """Does a Store of this process have this file open (so nothing may open() it)?"""
    ident = _identity(path)
    with _HELD_LOCK:
        return ident is not None and _HELD[ident] > 0


def hold(path: Path) -> tuple[int, int] | None:
    """Count the file as open in this process; returns what `release` takes."""
    ident = _identity(path)
    if ident is not None:
        with _HELD_LOCK:
            _HELD[ident] += 1
    return ident


def release(ident: tuple[int, int] | None) -> None:
    if ident is None:
        return
    with _HELD_LOCK:
        if _HELD[ident] > 0:
            _HELD[ident] -= 1


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
    elif name.startswith("SQLITE_FULL") or "disk is full" in text or (
            name.startswith("SQLITE_IOERR") and _disk_full(path)):
        return UsageError(f"database {path}: the disk is full ({text}); every point "
                          "committed before is kept")
    elif name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return UsageError(f"database {path} is read-only: this command needs to "
                          f"write to it ({text})")
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or text == "database is locked":
        return UsageError(f"database {path} is busy ({text}); try again")
    return DamagedDatabase(f"database {path} is damaged or unreadable ({text}); "
                           f"run `parabench check --db {path}`")


def _disk_full(path: Path) -> bool:
    """A write that failed with an I/O error on a disk with (almost) no space left."""
    try:
        return shutil.disk_usage(path.absolute().parent).free < 1 << 20
    except OSError:
        return False


def _guarded(method):
    """SQLite errors inside a Store method become one-line UsageErrors naming the file."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            raise _usage_error(self.path, e) from None

    return wrapper
