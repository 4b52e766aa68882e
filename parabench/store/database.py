"""`Store`: one open parabench database. Opening validates the file (and brings an
older one up to the schema when it may write); writing covers runs, records, peaks and
comparisons, every point committed in its own short transaction. Reading back lives in
`reading` (the `_Reading` half of Store)."""
from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..errors import UsageError
from ..integrity import DamagedRecord, row_checksum, verify_row
from ..records import METRIC_COLUMNS, Record
from .connection import BUSY_TIMEOUT_S, _check_size, _connect, _guarded, default_db_path
from .liveness import _live_status
from .reading import _Reading
from .schema import APPLICATION_ID, SCHEMA_VERSION, _upgrade

_LATEST = re.compile(r"latest(?:~(\d+))?")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store(_Reading):
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
            _check_size(self.path)
        if not exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"cannot create database directory {self.path.parent}: {e}") from None
        try:
            self._conn = _connect(self.path, self.readonly)
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
                _upgrade(c)

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
