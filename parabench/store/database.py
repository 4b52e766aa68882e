"""`Store`: one open parabench database. Opening validates the file (and brings an
older one up to the schema when it may write); writing covers runs and records, every
point committed in its own short transaction, every row sealed (see sealing.py). Reading
back lives in `reading` (the `_Reading` half of Store), peaks and comparisons in `extras`.

A writer leaves a whole file behind: closing it (explicitly, or at interpreter exit)
copies the write-ahead log into the database file, so the `.db` alone holds everything."""
from __future__ import annotations

import atexit
import json
import os
import re
import socket
import sqlite3
import sys
import uuid
import weakref
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..errors import UsageError
from ..integrity import DamagedRecord, verify_row, verify_sealed
from ..records import METRIC_COLUMNS, Record
from .connection import (
    BUSY_TIMEOUT_S,
    DamagedDatabase,
    _check_size,
    _close_quietly,
    _connect,
    _guarded,
    default_db_path,
    held_here,
    hold,
    release,
)
from .extras import _Extras
from .liveness import _live_status
from .reading import _Reading, _shown
from .schema import APPLICATION_ID, SCHEMA_VERSION, _upgrade, missing_columns
from .sealing import raw_row, seal, update_run

_LATEST = re.compile(r"latest(?:~(\d+))?")
#: Writers still open, closed (and so checkpointed) at interpreter exit.
_OPEN_WRITERS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_writers() -> None:
    for store in list(_OPEN_WRITERS):
        store.close()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store(_Reading, _Extras):
    """A parabench results database. Opening validates it; `create=False` refuses to
    make a new file (for commands that only read)."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True,
                 readonly: bool = False):
        self.path = Path(path) if path is not None else default_db_path()
        self.readonly = readonly
        #: records skipped by the last records_frame() because they failed verification
        self.damaged: list[DamagedRecord] = []
        #: what a read-only open could not see (a write-ahead log it cannot read)
        self.notes: list[str] = []
        self._conn = None
        if readonly and create:
            create = False
        try:
            if self.path.is_dir():
                raise UsageError(f"database path is a directory: {self.path}")
            exists = self.path.exists() and self.path.stat().st_size > 0
        except OSError as e:  # a name too long, a loop of links, ...
            raise UsageError(f"database path {_shown(self.path)}: {e.strerror or e}") from None
        if not exists and not create:
            raise UsageError(f"no results database at {self.path}; run `python -m parabench run` first")
        if exists and not os.access(self.path, os.R_OK):
            raise UsageError(f"cannot read database {self.path}: permission denied")
        if exists and not readonly:
            folder = self.path.parent if str(self.path.parent) else Path(".")
            if not os.access(self.path, os.W_OK):
                raise UsageError(f"database {self.path} is read-only: this command needs "
                                 "to write to it")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UsageError(f"database {self.path} is read-only (its folder is not "
                                 "writable): this command needs to write to it")
        if exists and not held_here(self.path):  # never open() a file SQLite holds here
            _check_size(self.path)
        if not exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"cannot create database directory {self.path.parent}: {e}") from None
        try:
            self._conn, self._copy = _connect(self.path, self.readonly, self.notes)
            self._held = hold(self.path)
            self._check_and_init(exists)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            self.close()
            text = " ".join(str(e).split())[:160]
            if "readonly database" in text:
                raise UsageError(f"database {self.path} is read-only: this command needs to "
                                 f"write to it ({text})") from None
            if "disk is full" in text:
                raise UsageError(f"database {self.path}: the disk is full ({text})") from None
            raise UsageError(f"{self.path} is not a usable parabench database ({text})") from None
        except BaseException:
            self.close()
            raise
        for note in self.notes:
            print(f"warning: {note}", file=sys.stderr)
        if not readonly:
            _OPEN_WRITERS.add(self)

    # -- opening -----------------------------------------------------------------------
    def _check_and_init(self, existed: bool) -> None:
        c = self._conn
        app_id = c.execute("PRAGMA application_id").fetchone()[0]  # reads the header only
        if app_id != APPLICATION_ID:
            n_tables = c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if existed and n_tables:
                raise UsageError(
                    f"{self.path} is an SQLite database of another program; refusing to touch it"
                )
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version < 4 and c.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
            version = 4  # sealed tables exist: a lower version is a damaged header
        self.version = version  # of the file as opened (a writer migrates it, below)
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"{self.path} has schema version {version}, newer than this parabench "
                f"({SCHEMA_VERSION}); upgrade parabench"
            )
        lacking = missing_columns(c, version) if app_id == APPLICATION_ID else []
        if lacking:
            raise DamagedDatabase(f"database {self.path} is damaged: its schema lacks "
                                  f"{', '.join(lacking[:3])}; run `parabench check --db "
                                  f"{self.path}`")
        if self.readonly:
            if app_id != APPLICATION_ID:
                raise UsageError(f"{self.path} is not a parabench database")
            return  # nothing switched, nothing migrated: an older schema reads as it is
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        if app_id != APPLICATION_ID or version < SCHEMA_VERSION:
            with self.transaction():
                _upgrade(c)
            self.version = SCHEMA_VERSION

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the
        busy timeout instead of failing halfway through."""
        if self.readonly:
            raise UsageError(f"database {self.path} was opened read-only; cannot write to it")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            # SQLite has already rolled back after some errors (a full disk): a second
            # ROLLBACK would fail and hide the real error behind "no transaction"
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close; a writer first checkpoints, so the database file alone is complete."""
        _OPEN_WRITERS.discard(self)
        release(getattr(self, "_held", None))
        self._held = None
        conn, self._conn = self._conn, None
        _close_quietly(conn, checkpoint=not self.readonly, copy=getattr(self, "_copy", None))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- runs ----------------------------------------------------------------------------
    @_guarded
    def start_run(self, *, sweep: dict, preset: str | None, command: str, env: dict) -> str:
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        git = env.get("git", {})
        now = utc_now()
        with self.transaction() as c:
            c.execute(
                "INSERT INTO runs (run_id, created_at, status, preset, command, sweep_json,"
                " git_commit, git_dirty, machine, env_json, host, pid, heartbeat_at, points)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
                (
                    run_id, now, "running", preset, command, json.dumps(sweep),
                    git.get("commit"), _opt_int(git.get("dirty")), env.get("machine"),
                    json.dumps(env), socket.gethostname(), os.getpid(), now,
                ),
            )
            seal(c, "runs", (run_id,))
        return run_id

    @_guarded
    def finish_run(self, run_id: str, status: str) -> None:
        with self.transaction() as c:
            update_run(c, run_id, status=status, finished_at=utc_now())

    @_guarded
    def reopen_run(self, run_id: str) -> dict:
        """Mark an earlier run as running again, in this process (for --resume), and
        return its row. A run that is still alive elsewhere is refused: two drivers
        would measure the same points."""
        row = self.run(run_id)
        if row["status"] == "running" and row.get("heartbeat_at"):  # alive, by its heartbeat
            raise UsageError(f"run {run_id} is still running (host {row.get('host')}, PID "
                             f"{row.get('pid')}, last heartbeat {row.get('heartbeat_at')}); "
                             f"stop it first, or resume it once it shows as interrupted")
        with self.transaction() as c:
            update_run(c, run_id, status="running", finished_at=None, host=socket.gethostname(),
                       pid=os.getpid(), heartbeat_at=utc_now())
        return row

    @_guarded
    def heartbeat(self, run_id: str) -> None:
        """Stamp a running run as alive (see `Heartbeat`)."""
        with self.transaction() as c:
            update_run(c, run_id, " AND status='running'", heartbeat_at=utc_now())

    @_guarded
    def run(self, run_id: str) -> dict:
        row = self._fetch_one("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if row is None:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        reason = verify_sealed("runs", row) if self.version >= 4 else None
        if reason:
            raise DamagedDatabase(f"run {run_id} in {self.path} is damaged ({reason}); run "
                                  f"`parabench check --db {self.path}`")
        row.pop("checksum", None)
        return _live_status(row)

    @_guarded
    def latest_run_id(self) -> str | None:
        row = self._conn.execute(
            "SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    @_guarded
    def find_run(self, name: str) -> str | None:
        """The run id that `name` means, or None when no run has it: 'latest' is the
        newest run, 'latest~N' the N-th before it (as git's HEAD~N), else a run id."""
        m = _LATEST.fullmatch(name)
        if m:
            back = int(m.group(1) or 0)
            held = self._conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            if back >= held:  # compared here: a 20-digit N would overflow SQLite's LIMIT
                raise UsageError(f"{name!r}: {self.path} holds only {held} run(s)")
            return self._conn.execute(
                "SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1 OFFSET ?",
                (back,)).fetchone()[0]
        row = self._conn.execute("SELECT 1 FROM runs WHERE run_id=?", (name,)).fetchone()
        return name if row else None

    def resolve_run(self, name: str) -> str:
        """Like find_run, but a name that matches no run is a UsageError."""
        rid = self.find_run(name)
        if rid is None:
            raise UsageError(f"no run {name!r} in {self.path}")
        return rid

    def resolve_runs(self, names) -> list[str]:
        """Run ids for names as `find_run` reads them, each checked to exist."""
        return [self.resolve_run(n) for n in names]

    # -- records -------------------------------------------------------------------------
    @_guarded
    def add_record(self, run_id: str, rec: Record) -> None:
        """Insert (or replace, on resume) one point, committed at once."""
        row = {"run_id": run_id, **rec.to_row(), "created_at": utc_now()}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as c:
            c.execute(f"INSERT OR REPLACE INTO records ({cols}) VALUES ({marks})", tuple(row.values()))
            seal(c, "records", (run_id, rec.key))
            update_run(c, run_id)  # its point count, in the same transaction

    @_guarded
    def update_metrics(self, run_id: str, key: str, **metrics) -> None:
        """Fill metric columns of an existing record (profile / telemetry passes);
        names outside METRIC_COLUMNS are merged into extra_json."""
        cols = {k: v for k, v in metrics.items() if k in METRIC_COLUMNS}
        rest = {k: v for k, v in metrics.items() if k not in METRIC_COLUMNS}
        with self.transaction() as c:
            raw = raw_row(c, "records", (run_id, key))
            if raw is None:
                raise KeyError(f"no record {key!r} in run {run_id!r}")
            # reseal only a row that was sound: an unverified (pre-v2) row stays
            # unverified, and a damaged one stays detectably damaged
            reseal = raw.get("checksum") is not None and verify_row(raw) is None
            if rest:
                extra = json.loads(raw["extra_json"]) if raw["extra_json"] else {}
                extra.update(rest)
                cols["extra_json"] = json.dumps(extra, default=str)
            if cols:
                sets = ", ".join(f"{k}=?" for k in cols)
                c.execute(
                    f"UPDATE records SET {sets} WHERE run_id=? AND key=?",
                    (*cols.values(), run_id, key),
                )
                if reseal:
                    seal(c, "records", (run_id, key))

    @_guarded
    def done_keys(self, run_id: str) -> set[str]:
        """Keys of points that need no re-measurement on resume (errors are retried)."""
        rows = self._conn.execute(
            "SELECT key FROM records WHERE run_id=? AND status IN ('ok','skipped','oom')",
            (run_id,),
        ).fetchall()
        return {r[0] for r in rows}


def _opt_int(v):
    return None if v is None else int(bool(v))


def load(db: str | Path | None = None, run: str | list[str] | None = None, *, status=None):
    """Records of a parabench database as a pandas DataFrame.

    `run` is a run id, a list of them, or 'latest'; None means every run.
    `status` filters, e.g. 'ok'.
    """
    with Store(db, create=False, readonly=True) as s:
        runs = [run] if isinstance(run, str) else run
        ids = s.resolve_runs(runs) if runs else None
        return s.records_frame(ids, status=status)
