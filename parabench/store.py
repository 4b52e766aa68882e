"""The embedded results database (SQLite from the standard library).

Two tables carry the results: `runs` (one row per invocation, with its environment)
and `records` (one row per measured point, raw samples included). `peaks` caches each
machine's measured peak throughput. Every point is committed in its own short
transaction the moment it finishes, so a crash or Ctrl-C loses nothing that was
finished; WAL mode plus a busy timeout lets two runs write into one file at once.

The file is stamped with an application id, so a file that is not a parabench
database is refused instead of being modified.

Every record row carries a checksum (sha256 over its stored values, see
`integrity.row_checksum`), written with the row and verified whenever records are read, and its
derived statistics are checked against its raw samples: a damaged record is skipped
with a warning (and listed in `Store.damaged`), never read as a silently wrong number.
Rows written before schema version 2 have no checksum; they are "unverified", not
damaged. SQLite errors while reading become one-line UsageErrors naming the file.

`Store(path, create=False, readonly=True)` reads without writing anything: no journal
mode switch, no -wal/-shm files where there were none.
"""
from __future__ import annotations

import functools
import json
import os
import re
import socket
import sqlite3
import struct
import sys
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .errors import UsageError
from .integrity import DamagedRecord, row_checksum, verify_row
from .records import METRIC_COLUMNS, Record

__all__ = ["DamagedDatabase", "DamagedRecord", "Heartbeat", "Store", "default_db_path", "load",
           "utc_now"]

APPLICATION_ID = 0x50524243  # "PRBC": marks a file as a parabench database
SCHEMA_VERSION = 3  # 2: records.checksum; 3: records.machine/env_json, runs.host/pid/heartbeat_at
BUSY_TIMEOUT_S = 60.0
#: A running sweep stamps runs.heartbeat_at this often (a thread, see `Heartbeat`) ...
HEARTBEAT_S = 10.0
#: ... and a "running" run whose stamp is older than this, or whose process is gone from
#: this host, is shown as interrupted: a killed run must not read "running" forever.
STALE_AFTER_S = 6 * HEARTBEAT_S
#: Columns added after version 2, added to older files on open by a writer (their old
#: rows keep NULL there: records then fall back to their run's machine).
_ADDED_COLUMNS = (("runs", "host", "TEXT"), ("runs", "pid", "INTEGER"),
                  ("runs", "heartbeat_at", "TEXT"), ("records", "machine", "TEXT"),
                  ("records", "env_json", "TEXT"))
_LATEST = re.compile(r"latest(?:~(\d+))?")


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL,           -- running | finished | interrupted | failed
    preset       TEXT,
    command      TEXT,
    sweep_json   TEXT,
    git_commit   TEXT,
    git_dirty    INTEGER,
    machine      TEXT,
    env_json     TEXT,
    host         TEXT,                    -- where the driver runs (stale-run detection)
    pid          INTEGER,                 -- the driver's process id on that host
    heartbeat_at TEXT                     -- last sign of life of a running run
);
CREATE TABLE IF NOT EXISTS records (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id             TEXT NOT NULL REFERENCES runs(run_id),
    key                TEXT NOT NULL,
    family             TEXT NOT NULL,
    depth              INTEGER NOT NULL,
    batch              INTEGER NOT NULL,
    dtype              TEXT NOT NULL,
    mode               TEXT NOT NULL,
    workload           TEXT NOT NULL,
    device             TEXT NOT NULL,
    img_size           INTEGER,
    width              TEXT,
    status             TEXT NOT NULL,     -- ok | oom | error | skipped
    reason             TEXT,
    unit               TEXT NOT NULL DEFAULT 'ms',
    samples_json       TEXT,
    n                  INTEGER,
    median_ms          REAL,
    mean_ms            REAL,
    p10_ms             REAL,
    p90_ms             REAL,
    iqr_ms             REAL,
    noisy              INTEGER,
    throughput         REAL,              -- images per second
    params             INTEGER,
    flops              REAL,              -- forward FLOPs per image (2 x MACs)
    flops_analytic     REAL,
    peak_mem_allocated INTEGER,           -- bytes
    peak_mem_reserved  INTEGER,           -- bytes
    peak_rss           INTEGER,           -- bytes
    {", ".join(f"{c} {t}" for c, t in METRIC_COLUMNS.items())},
    extra_json         TEXT,
    created_at         TEXT NOT NULL,
    checksum           TEXT,              -- sha256 of the stored values (NULL before v2)
    machine            TEXT,              -- host/device that measured it (NULL before v3)
    env_json           TEXT,              -- the measuring worker's environment
    UNIQUE (run_id, key)
);
CREATE INDEX IF NOT EXISTS records_run ON records(run_id);
CREATE TABLE IF NOT EXISTS peaks (
    machine     TEXT NOT NULL,
    device      TEXT NOT NULL,
    dtype       TEXT NOT NULL,
    tflops      REAL NOT NULL,
    measured_at TEXT NOT NULL,
    detail_json TEXT,
    PRIMARY KEY (machine, device, dtype)
);
CREATE TABLE IF NOT EXISTS comparisons (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT NOT NULL,
    baseline    TEXT NOT NULL,
    contender   TEXT NOT NULL,
    result_json TEXT NOT NULL           -- what `parabench compare` concluded, per benchmark
);
"""


class DamagedDatabase(UsageError):
    """The file is a parabench database, but SQLite cannot read it whole (malformed
    pages, a truncated file). `parabench check` reports it as damage (exit 1)."""


def _lenient_text(b: bytes) -> str:
    """text_factory for reading records: invalid UTF-8 (a damaged byte) decodes with
    surrogate escapes instead of failing the whole query; the checksum then flags it."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("utf-8", "surrogateescape")


def _guarded(method):
    """SQLite errors inside a Store method become one-line UsageErrors naming the file."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            raise self._usage_error(e) from None

    return wrapper


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_db_path() -> Path:
    """$PARABENCH_DB, else results/parabench.db under the current directory."""
    return Path(os.environ.get("PARABENCH_DB") or Path("results") / "parabench.db")


class Store:
    """A parabench results database. Opening validates it; `create=False` refuses to
    make a new file (for commands that only read)."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True,
                 readonly: bool = False):
        self.path = Path(path) if path is not None else default_db_path()
        self.readonly = readonly
        #: records skipped by the last records_frame() because they failed verification
        self.damaged: list[DamagedRecord] = []
        if readonly and create:
            create = False
        if self.path.is_dir():
            raise UsageError(f"database path is a directory: {self.path}")
        exists = self.path.exists() and self.path.stat().st_size > 0
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
        if exists:
            self._check_size()
        if not exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"cannot create database directory {self.path.parent}: {e}") from None
        try:
            self._conn = self._connect()
            self._check_and_init(exists)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            if getattr(self, "_conn", None) is not None:
                self._conn.close()
            text = " ".join(str(e).split())[:160]
            if "readonly database" in text:
                raise UsageError(f"database {self.path} is read-only: this command needs to "
                                 f"write to it ({text})") from None
            raise UsageError(f"{self.path} is not a usable parabench database ({text})") from None
        except BaseException:
            if getattr(self, "_conn", None) is not None:
                self._conn.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        kw = dict(timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        if not self.readonly:
            return sqlite3.connect(self.path, **kw)
        uri = "file:" + _uri_path(self.path.absolute())
        wal = Path(f"{self.path}-wal")
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

    def _check_size(self) -> None:
        """A file shorter than its header says (or not a whole number of pages) was
        truncated: refuse it in one line instead of failing at some later read."""
        try:
            with open(self.path, "rb") as f:
                head = f.read(100)
            size = self.path.stat().st_size
        except OSError:
            return
        if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
            return  # not SQLite at all: the open refuses it with its own message
        page = struct.unpack(">H", head[16:18])[0]
        page = 65536 if page == 1 else page
        count, counter, valid_for = (struct.unpack(">I", head[o:o + 4])[0] for o in (28, 24, 92))
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return  # pages may live in the WAL; SQLite's own checks apply
        if page < 512 or size % page or (counter == valid_for and count and size < page * count):
            raise DamagedDatabase(
                f"database {self.path} is truncated or damaged: {size} bytes, its header "
                f"says {count} pages of {page}; run `parabench check --db {self.path}`")

    def _usage_error(self, e: Exception) -> UsageError:
        text = " ".join(str(e).split())
        text = text if len(text) <= 160 else text[:157] + "..."
        name = getattr(e, "sqlite_errorname", "") or ""
        if isinstance(e, UnicodeDecodeError) or "malformed" in text:
            pass  # damage, below
        elif name.startswith("SQLITE_READONLY") or "readonly database" in text:
            return UsageError(f"database {self.path} is read-only: this command needs to "
                              f"write to it ({text})")
        elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or text == "database is locked":
            return UsageError(f"database {self.path} is busy ({text}); try again")
        return DamagedDatabase(f"database {self.path} is damaged or unreadable ({text}); "
                               f"run `parabench check --db {self.path}`")

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
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"{self.path} has schema version {version}, newer than this parabench "
                f"({SCHEMA_VERSION}); upgrade parabench"
            )
        if self.readonly:
            if app_id != APPLICATION_ID:
                raise UsageError(f"{self.path} is not a parabench database")
            return  # nothing switched, nothing migrated: an older schema reads as it is
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        if app_id != APPLICATION_ID or version < SCHEMA_VERSION:
            with self.transaction():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                cols = {r[1] for r in c.execute("PRAGMA table_info(records)")}
                if "checksum" not in cols:  # version 1: rows stay, unverified
                    c.execute("ALTER TABLE records ADD COLUMN checksum TEXT")
                for table, col, kind in _ADDED_COLUMNS:  # version 2: old sums stay valid
                    if col not in {r[1] for r in c.execute(f"PRAGMA table_info({table})")}:
                        c.execute(f"ALTER TABLE {table} ADD COLUMN {col} {kind}")
                c.execute(f"PRAGMA application_id={APPLICATION_ID}")
                c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

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
                " git_commit, git_dirty, machine, env_json, host, pid, heartbeat_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, now, "running", preset, command, json.dumps(sweep),
                    git.get("commit"), _opt_int(git.get("dirty")), env.get("machine"),
                    json.dumps(env), socket.gethostname(), os.getpid(), now,
                ),
            )
        return run_id

    @_guarded
    def finish_run(self, run_id: str, status: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status=?, finished_at=? WHERE run_id=?", (status, utc_now(), run_id)
            )

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
            c.execute("UPDATE runs SET status='running', finished_at=NULL, host=?, pid=?,"
                      " heartbeat_at=? WHERE run_id=?",
                      (socket.gethostname(), os.getpid(), utc_now(), run_id))
        return row

    @_guarded
    def heartbeat(self, run_id: str) -> None:
        """Stamp a running run as alive (see `Heartbeat`)."""
        with self.transaction() as c:
            c.execute("UPDATE runs SET heartbeat_at=? WHERE run_id=? AND status='running'",
                      (utc_now(), run_id))

    @_guarded
    def run(self, run_id: str) -> dict:
        cur = self._conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        return _live_status(dict(zip([d[0] for d in cur.description], row, strict=True)))

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
            ids = [r[0] for r in self._conn.execute(
                "SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (back + 1,))]
            if len(ids) <= back:
                held = self._conn.execute("SELECT count(*) FROM runs").fetchone()[0]
                raise UsageError(f"{name!r}: {self.path} holds only {held} run(s)")
            return ids[back]
        row = self._conn.execute("SELECT 1 FROM runs WHERE run_id=?", (name,)).fetchone()
        return name if row else None

    def resolve_run(self, name: str) -> str:
        """Like find_run, but a name that matches no run is a UsageError."""
        rid = self.find_run(name)
        if rid is None:
            raise UsageError(f"no run {name!r} in {self.path}")
        return rid

    # -- records -------------------------------------------------------------------------
    @_guarded
    def add_record(self, run_id: str, rec: Record) -> None:
        """Insert (or replace, on resume) one point, committed at once."""
        row = {"run_id": run_id, **rec.to_row(), "created_at": utc_now()}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as c:
            c.execute(f"INSERT OR REPLACE INTO records ({cols}) VALUES ({marks})", tuple(row.values()))
            self._seal(c, run_id, rec.key)

    @staticmethod
    def _raw_record(c, run_id: str, key: str) -> dict | None:
        cur = c.execute("SELECT * FROM records WHERE run_id=? AND key=?", (run_id, key))
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row,
                                                 strict=True))

    def _seal(self, c, run_id: str, key: str) -> None:
        """Store the checksum of the row as SQLite now holds it (read back in the same
        transaction, so type affinity cannot make the sum disagree with the stored row)."""
        row = self._raw_record(c, run_id, key)
        c.execute("UPDATE records SET checksum=? WHERE run_id=? AND key=?",
                  (row_checksum(row), run_id, key))

    @_guarded
    def update_metrics(self, run_id: str, key: str, **metrics) -> None:
        """Fill metric columns of an existing record (profile / telemetry passes);
        names outside METRIC_COLUMNS are merged into extra_json."""
        cols = {k: v for k, v in metrics.items() if k in METRIC_COLUMNS}
        rest = {k: v for k, v in metrics.items() if k not in METRIC_COLUMNS}
        with self.transaction() as c:
            raw = self._raw_record(c, run_id, key)
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
                    self._seal(c, run_id, key)

    @_guarded
    def done_keys(self, run_id: str) -> set[str]:
        """Keys of points that need no re-measurement on resume (errors are retried)."""
        rows = self._conn.execute(
            "SELECT key FROM records WHERE run_id=? AND status IN ('ok','skipped','oom')",
            (run_id,),
        ).fetchall()
        return {r[0] for r in rows}

    # -- peaks ---------------------------------------------------------------------------
    @_guarded
    def get_peak(self, machine: str, device: str, dtype: str) -> float | None:
        row = self._conn.execute(
            "SELECT tflops FROM peaks WHERE machine=? AND device=? AND dtype=?",
            (machine, device, dtype),
        ).fetchone()
        return row[0] if row else None

    @_guarded
    def set_peak(self, machine: str, device: str, dtype: str, tflops: float, detail=None) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO peaks VALUES (?,?,?,?,?,?)",
                (machine, device, dtype, tflops, utc_now(), json.dumps(detail or {})),
            )

    # -- comparisons ---------------------------------------------------------------------
    @_guarded
    def add_comparison(self, baseline: str, contender: str, result: dict) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO comparisons (created_at, baseline, contender, result_json)"
                " VALUES (?,?,?,?)",
                (utc_now(), baseline, contender, json.dumps(result, default=str)),
            )

    @_guarded
    def latest_comparison(self) -> dict | None:
        row = self._conn.execute(
            "SELECT created_at, baseline, contender, result_json FROM comparisons"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {"created_at": row[0], "baseline": row[1], "contender": row[2],
                "result": json.loads(row[3])}

    # -- reading -------------------------------------------------------------------------
    @_guarded
    def runs_frame(self):
        import pandas as pd

        names, rows = self._fetch_raw("SELECT * FROM runs ORDER BY created_at")
        live = [_live_status(dict(zip(names, r, strict=True))) for r in rows]
        rows = [tuple(d[n] for n in names) for d in live]
        return _frame(pd, rows, names)

    @_guarded
    def status_counts(self) -> dict[str, dict[str, int]]:
        """{run id: {status: number of records}}, counted by SQLite (no sample decoded)."""
        out: dict[str, dict[str, int]] = {}
        for rid, status, n in self._conn.execute(
                "SELECT run_id, status, count(*) FROM records GROUP BY run_id, status"):
            out.setdefault(rid, {})[status] = n
        return out

    @_guarded
    def records_frame(self, run_ids=None, *, status=None, verify: bool = True):
        """Records joined with their run's commit, machine and preset, one row per point.
        `samples_ms` is decoded into a list.

        Each row is verified on its raw SQLite values (checksum, samples decode, stats
        agree with samples); a damaged one is left out, warned about on stderr and
        listed in `self.damaged`. `verify=False` skips the checks (and the warnings)."""
        import pandas as pd

        where, args = [], []
        if run_ids:
            where.append(f"r.run_id IN ({', '.join('?' for _ in run_ids)})")
            args += list(run_ids)
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"r.status IN ({', '.join('?' for _ in statuses)})")
            args += statuses
        sql = (
            "SELECT r.*, u.git_commit, u.git_dirty, u.machine AS run_machine, u.preset,"
            " u.created_at AS run_created_at, u.run_id IS NOT NULL AS _run_found"
            " FROM records r LEFT JOIN runs u ON u.run_id = r.run_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY r.id"
        )
        names, rows = self._fetch_raw(sql, args)
        self.damaged = []
        good = []
        for row in rows:
            # a record whose run is gone (a damaged run id on either side) is damaged too
            reason = verify_row(dict(zip(names, row, strict=True))) if verify else None
            if reason is None and not row[-1]:
                reason = "its run is missing" if verify else "skip"
            if reason is None:
                good.append(row[:-1])
            elif verify:
                self._report(DamagedRecord(str(row[names.index("run_id")]),
                                           str(row[names.index("key")]), reason))
        df = _frame(pd, good, names[:-1])
        if "checksum" in df.columns:
            df = df.drop(columns=["checksum"])
        # the machine that measured a record is its own (v3), else its run's driver's
        own = df["machine"] if "machine" in df.columns else None
        df["machine"] = df["run_machine"] if own is None else own.where(own.notna(),
                                                                         df["run_machine"])
        df["samples_ms"] = df["samples_json"].map(lambda s: json.loads(s) if isinstance(s, str) else [])
        df["extra"] = df["extra_json"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
        env = df["env_json"] if "env_json" in df.columns else df["extra_json"].map(lambda _: None)
        df["env"] = env.map(lambda s: json.loads(s) if isinstance(s, str) else {})
        return df.drop(columns=[c for c in ("samples_json", "extra_json", "env_json",
                                            "run_machine") if c in df.columns])

    def _fetch_raw(self, sql: str, args=()) -> tuple[list[str], list[tuple]]:
        """Column names and raw rows, text decoded leniently (see _lenient_text)."""
        self._conn.text_factory = _lenient_text
        try:
            cur = self._conn.execute(sql, args)
            return [d[0] for d in cur.description], cur.fetchall()
        finally:
            self._conn.text_factory = str

    def _report(self, damage: DamagedRecord) -> None:
        self.damaged.append(damage)
        print(f"warning: {self.path}: skipping damaged {damage}", file=sys.stderr)

    @_guarded
    def verify_records(self) -> tuple[list[DamagedRecord], int, int]:
        """Verify every record: (damaged records, number verified by checksum, number
        unverified because written before checksums). Records whose run is missing are
        damaged too. Reads nothing into pandas."""
        names, rows = self._fetch_raw(
            "SELECT r.*, u.run_id IS NOT NULL AS _has_run FROM records r"
            " LEFT JOIN runs u ON u.run_id = r.run_id ORDER BY r.id")
        damaged, checked, unverified = [], 0, 0
        for row in rows:
            d = dict(zip(names, row, strict=True))
            reason = verify_row(d) or (None if d.pop("_has_run") else "its run is missing")
            if reason:
                damaged.append(DamagedRecord(str(d.get("run_id")), str(d.get("key")), reason))
            elif d.get("checksum") is None:
                unverified += 1
            else:
                checked += 1
        return damaged, checked, unverified

    def integrity_check(self) -> list[str]:
        """SQLite's own structural check: [] when the file is sound, else its findings."""
        try:
            rows = [r[0] for r in self._conn.execute("PRAGMA integrity_check")]
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            return [" ".join(str(e).split())[:160]]
        return [] if rows == ["ok"] else rows

    def resolve_runs(self, names) -> list[str]:
        """Run ids for names as `find_run` reads them, each checked to exist."""
        return [self.resolve_run(n) for n in names]


def _frame(pd, rows, names):
    """The DataFrame pd.read_sql_query would have built from these rows."""
    try:
        from pandas.io.sql import _wrap_result

        return _wrap_result(rows, names, coerce_float=True)
    except (ImportError, TypeError):
        return pd.DataFrame.from_records(rows, columns=names, coerce_float=True)


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(path.as_posix(), safe="/:")


def _opt_int(v):
    return None if v is None else int(bool(v))


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
    """Stamps a running run as alive every HEARTBEAT_S seconds from a thread, on its
    own connection (the measuring thread may be busy for minutes inside one point)."""

    def __init__(self, path: Path, run_id: str):
        import threading

        self._path, self._run_id = path, run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="parabench-heartbeat",
                                        daemon=True)

    def _beat(self) -> None:
        store = None
        while not self._stop.wait(HEARTBEAT_S):
            try:
                store = store or Store(self._path, create=False)
                store.heartbeat(self._run_id)
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


def load(db: str | Path | None = None, run: str | list[str] | None = None, *, status=None):
    """Records of a parabench database as a pandas DataFrame.

    `run` is a run id, a list of them, or 'latest'; None means every run.
    `status` filters, e.g. 'ok'.
    """
    with Store(db, create=False, readonly=True) as s:
        runs = [run] if isinstance(run, str) else run
        ids = s.resolve_runs(runs) if runs else None
        return s.records_frame(ids, status=status)
