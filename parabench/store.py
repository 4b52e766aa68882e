"""The embedded results database (SQLite from the standard library).

Two tables carry the results: `runs` (one row per invocation, with its environment)
and `records` (one row per measured point, raw samples included). `peaks` caches each
machine's measured peak throughput. Every point is committed in its own short
transaction the moment it finishes, so a crash or Ctrl-C loses nothing that was
finished; WAL mode plus a busy timeout lets two runs write into one file at once.

The file is stamped with an application id, so a file that is not a parabench
database is refused instead of being modified.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .errors import UsageError
from .records import METRIC_COLUMNS, Record

__all__ = ["Store", "default_db_path", "load", "utc_now"]

APPLICATION_ID = 0x50524243  # "PRBC": marks a file as a parabench database
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0
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
    env_json     TEXT
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


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_db_path() -> Path:
    """$PARABENCH_DB, else results/parabench.db under the current directory."""
    return Path(os.environ.get("PARABENCH_DB") or Path("results") / "parabench.db")


class Store:
    """A parabench results database. Opening validates it; `create=False` refuses to
    make a new file (for commands that only read)."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True):
        self.path = Path(path) if path is not None else default_db_path()
        if self.path.is_dir():
            raise UsageError(f"database path is a directory: {self.path}")
        exists = self.path.exists() and self.path.stat().st_size > 0
        if not exists and not create:
            raise UsageError(f"no results database at {self.path}; run `python -m parabench run` first")
        if exists and not os.access(self.path, os.R_OK):
            raise UsageError(f"cannot read database {self.path}: permission denied")
        if not exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"cannot create database directory {self.path.parent}: {e}") from None
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._check_and_init(exists)
        except sqlite3.DatabaseError as e:
            raise UsageError(f"{self.path} is not a usable parabench database ({e})") from None

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
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        if app_id != APPLICATION_ID or version < SCHEMA_VERSION:
            with self.transaction():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute(f"PRAGMA application_id={APPLICATION_ID}")
                c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the
        busy timeout instead of failing halfway through."""
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
    def start_run(self, *, sweep: dict, preset: str | None, command: str, env: dict) -> str:
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        git = env.get("git", {})
        with self.transaction() as c:
            c.execute(
                "INSERT INTO runs (run_id, created_at, status, preset, command, sweep_json,"
                " git_commit, git_dirty, machine, env_json) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, utc_now(), "running", preset, command, json.dumps(sweep),
                    git.get("commit"), _opt_int(git.get("dirty")), env.get("machine"),
                    json.dumps(env),
                ),
            )
        return run_id

    def finish_run(self, run_id: str, status: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status=?, finished_at=? WHERE run_id=?", (status, utc_now(), run_id)
            )

    def reopen_run(self, run_id: str) -> dict:
        """Mark an earlier run as running again (for --resume) and return its row."""
        row = self.run(run_id)
        with self.transaction() as c:
            c.execute("UPDATE runs SET status='running', finished_at=NULL WHERE run_id=?", (run_id,))
        return row

    def run(self, run_id: str) -> dict:
        cur = self._conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def latest_run_id(self) -> str | None:
        row = self._conn.execute(
            "SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

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
    def add_record(self, run_id: str, rec: Record) -> None:
        """Insert (or replace, on resume) one point, committed at once."""
        row = {"run_id": run_id, **rec.to_row(), "created_at": utc_now()}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as c:
            c.execute(f"INSERT OR REPLACE INTO records ({cols}) VALUES ({marks})", tuple(row.values()))

    def update_metrics(self, run_id: str, key: str, **metrics) -> None:
        """Fill metric columns of an existing record (profile / telemetry passes);
        names outside METRIC_COLUMNS are merged into extra_json."""
        cols = {k: v for k, v in metrics.items() if k in METRIC_COLUMNS}
        rest = {k: v for k, v in metrics.items() if k not in METRIC_COLUMNS}
        with self.transaction() as c:
            row = c.execute(
                "SELECT extra_json FROM records WHERE run_id=? AND key=?", (run_id, key)
            ).fetchone()
            if row is None:
                raise KeyError(f"no record {key!r} in run {run_id!r}")
            if rest:
                extra = json.loads(row[0]) if row[0] else {}
                extra.update(rest)
                cols["extra_json"] = json.dumps(extra, default=str)
            if cols:
                sets = ", ".join(f"{k}=?" for k in cols)
                c.execute(
                    f"UPDATE records SET {sets} WHERE run_id=? AND key=?",
                    (*cols.values(), run_id, key),
                )

    def done_keys(self, run_id: str) -> set[str]:
        """Keys of points that need no re-measurement on resume (errors are retried)."""
        rows = self._conn.execute(
            "SELECT key FROM records WHERE run_id=? AND status IN ('ok','skipped','oom')",
            (run_id,),
        ).fetchall()
        return {r[0] for r in rows}

    # -- peaks ---------------------------------------------------------------------------
    def get_peak(self, machine: str, device: str, dtype: str) -> float | None:
        row = self._conn.execute(
            "SELECT tflops FROM peaks WHERE machine=? AND device=? AND dtype=?",
            (machine, device, dtype),
        ).fetchone()
        return row[0] if row else None

    def set_peak(self, machine: str, device: str, dtype: str, tflops: float, detail=None) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO peaks VALUES (?,?,?,?,?,?)",
                (machine, device, dtype, tflops, utc_now(), json.dumps(detail or {})),
            )

    # -- comparisons ---------------------------------------------------------------------
    def add_comparison(self, baseline: str, contender: str, result: dict) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO comparisons (created_at, baseline, contender, result_json)"
                " VALUES (?,?,?,?)",
                (utc_now(), baseline, contender, json.dumps(result, default=str)),
            )

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
    def runs_frame(self):
        import pandas as pd

        return pd.read_sql_query("SELECT * FROM runs ORDER BY created_at", self._conn)

    def status_counts(self) -> dict[str, dict[str, int]]:
        """{run id: {status: number of records}}, counted by SQLite (no sample decoded)."""
        out: dict[str, dict[str, int]] = {}
        for rid, status, n in self._conn.execute(
                "SELECT run_id, status, count(*) FROM records GROUP BY run_id, status"):
            out.setdefault(rid, {})[status] = n
        return out

    def records_frame(self, run_ids=None, *, status=None):
        """Records joined with their run's commit, machine and preset, one row per point.
        `samples_ms` is decoded into a list."""
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
            "SELECT r.*, u.git_commit, u.git_dirty, u.machine, u.preset,"
            " u.created_at AS run_created_at FROM records r JOIN runs u USING (run_id)"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY r.id"
        )
        df = pd.read_sql_query(sql, self._conn, params=args)
        df["samples_ms"] = df["samples_json"].map(lambda s: json.loads(s) if isinstance(s, str) else [])
        df["extra"] = df["extra_json"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
        return df.drop(columns=["samples_json", "extra_json"])

    def resolve_runs(self, names) -> list[str]:
        """Run ids for names as `find_run` reads them, each checked to exist."""
        return [self.resolve_run(n) for n in names]


def _opt_int(v):
    return None if v is None else int(bool(v))


def load(db: str | Path | None = None, run: str | list[str] | None = None, *, status=None):
    """Records of a parabench database as a pandas DataFrame.

    `run` is a run id, a list of them, or 'latest'; None means every run.
    `status` filters, e.g. 'ok'.
    """
    with Store(db, create=False) as s:
        runs = [run] if isinstance(run, str) else run
        ids = s.resolve_runs(runs) if runs else None
        return s.records_frame(ids, status=status)
