"""What a parabench database file holds: the application id that marks it, the schema
version, the tables, and the upgrade an older file gets when a writer opens it."""
from __future__ import annotations

import functools

from ..records import METRIC_COLUMNS
from .sealing import seal_all_unsealed

APPLICATION_ID = 0x50524243  # "PRBC": marks a file as a parabench database
#: 2: records.checksum; 3: records.machine/env_json, runs.host/pid/heartbeat_at;
#: 4: every table sealed (runs.checksum and runs.points, peaks/comparisons.checksum, meta)
SCHEMA_VERSION = 4
#: Columns added after version 2, added to older files on open by a writer (their old
#: rows keep NULL there: records then fall back to their run's machine).
_ADDED_COLUMNS = (("runs", "host", "TEXT"), ("runs", "pid", "INTEGER"),
                  ("runs", "heartbeat_at", "TEXT"), ("records", "machine", "TEXT"),
                  ("records", "env_json", "TEXT"), ("runs", "points", "INTEGER"),
                  ("runs", "checksum", "TEXT"), ("peaks", "checksum", "TEXT"),
                  ("comparisons", "checksum", "TEXT"))


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
    heartbeat_at TEXT,                    -- last sign of life of a running run
    points       INTEGER,                 -- records stored for this run (v4)
    checksum     TEXT                     -- sha256 of the row (v4, see integrity.py)
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
    checksum    TEXT,
    PRIMARY KEY (machine, device, dtype)
);
CREATE TABLE IF NOT EXISTS comparisons (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT NOT NULL,
    baseline    TEXT NOT NULL,
    contender   TEXT NOT NULL,
    -- result_json: what `parabench compare` concluded, per benchmark
    result_json TEXT NOT NULL,
    checksum    TEXT
);
CREATE TABLE IF NOT EXISTS meta (        -- sealed facts about the file itself
    name     TEXT PRIMARY KEY,
    value    INTEGER NOT NULL,
    checksum TEXT
);
"""


def missing_columns(c, version: int) -> list[str]:
    """Columns a file of `version` must have and lacks ("table.column"): a damaged
    schema text (a flipped letter renames a column) is refused, never half read."""
    want = _expected_columns()
    if version < SCHEMA_VERSION:  # an older file lacks what came later
        later = {(t, col) for t, col, _ in _ADDED_COLUMNS} | {("records", "checksum")}
        want = {t: [col for col in cols if (t, col) not in later] for t, cols in want.items()}
        want.pop("meta")
    out = []
    for table, cols in want.items():
        have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
        out += [f"{table}.{col}" for col in cols if col not in have]
    return out


@functools.cache
def _expected_columns() -> dict[str, list[str]]:
    import sqlite3

    mem = sqlite3.connect(":memory:")
    mem.executescript(_SCHEMA)
    tables = [r[0] for r in mem.execute("SELECT name FROM sqlite_master WHERE type='table'"
                                        " AND name NOT LIKE 'sqlite_%'")]
    out = {t: [r[1] for r in mem.execute(f"PRAGMA table_info({t})")] for t in tables}
    mem.close()
    return out


def _upgrade(c) -> None:
    """Bring a new or older file to this schema and stamp it as a parabench database of
    this version; run inside the caller's write transaction. A file that already has
    `meta` was version 4 (its header's version damaged): nothing unsealed is sealed
    then, so no damage is ever vouched for."""
    sealed = c.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone()
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            c.execute(stmt)
    cols = {r[1] for r in c.execute("PRAGMA table_info(records)")}
    if "checksum" not in cols:  # version 1: rows stay, unverified
        c.execute("ALTER TABLE records ADD COLUMN checksum TEXT")
    for table, col, kind in _ADDED_COLUMNS:  # version 2: old sums stay valid
        if col not in {r[1] for r in c.execute(f"PRAGMA table_info({table})")}:
            c.execute(f"ALTER TABLE {table} ADD COLUMN {col} {kind}")
    if not sealed:  # version 3 and before: runs, peaks, comparisons had no sums
        seal_all_unsealed(c)
    c.execute(f"PRAGMA application_id={APPLICATION_ID}")
    c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
