"""Reading a database back: runs and records as pandas DataFrames, each record verified
on its raw SQLite values first (a damaged one is skipped with a warning and listed in
`Store.damaged`, never read as a silently wrong number), and the whole-file checks
behind `parabench check`."""
from __future__ import annotations

import json
import sqlite3
import sys

from ..integrity import DamagedRecord, verify_row
from .connection import _guarded
from .liveness import _live_status


class _Reading:
    """The reading half of `Store` (which provides `path`, `_conn` and `damaged`)."""

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


def _lenient_text(b: bytes) -> str:
    """text_factory for reading records: invalid UTF-8 (a damaged byte) decodes with
    surrogate escapes instead of failing the whole query; the checksum then flags it."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("utf-8", "surrogateescape")


def _frame(pd, rows, names):
    """The DataFrame pd.read_sql_query would have built from these rows."""
    try:
        from pandas.io.sql import _wrap_result

        return _wrap_result(rows, names, coerce_float=True)
    except (ImportError, TypeError):
        return pd.DataFrame.from_records(rows, columns=names, coerce_float=True)
