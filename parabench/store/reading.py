"""Reading a database back: runs and records as pandas DataFrames, every row verified on
its raw SQLite values first (a damaged one is skipped with a warning and listed in
`Store.damaged`, never read as a silently wrong number), and the whole-file checks
behind `parabench check`.

Records are read by a full scan (`NOT INDEXED`), never through an index: a damaged
index would otherwise return some of a run's records and no error. Each run's row says
how many points it stored; a read that finds a different number says so. All of one
read happens in one snapshot, so a run being written meanwhile is not miscounted."""
from __future__ import annotations

import json
import sqlite3
import sys
from contextlib import contextmanager

from ..integrity import DamagedRecord, verify_row, verify_sealed
from ..records import STATUSES
from .connection import _guarded
from .liveness import _live_status
from .sealing import UNVERIFIED_UPTO

#: The run's columns a record row is read with (as records_frame's frame names them).
_RUN_COLUMNS = (("git_commit", "git_commit"), ("git_dirty", "git_dirty"),
                ("machine", "run_machine"), ("preset", "preset"),
                ("created_at", "run_created_at"))


class _Reading:
    """The reading half of `Store` (which provides `path`, `_conn`, `version`, `notes`
    and `damaged`)."""

    @contextmanager
    def _snapshot(self):
        """One read transaction: every query inside sees the same committed state."""
        own = not self._conn.in_transaction
        if own:
            self._conn.execute("BEGIN")
        try:
            yield
        finally:
            if own and self._conn.in_transaction:
                self._conn.execute("COMMIT")

    def _unverified_upto(self, problems: list | None = None) -> int | None:
        """The last record id that may lack a checksum: None for a file older than
        version 4 (read as it is, every unsealed record unverified), else the sealed
        number in `meta`; a damaged or missing one counts as 0 (the strictest)."""
        if self.version < 4:
            return None
        row = self._fetch_one("SELECT * FROM meta WHERE name=?", (UNVERIFIED_UPTO,))
        reason = "missing" if row is None else verify_sealed("meta", row)
        if reason is None and isinstance(row["value"], int):
            return row["value"]
        if problems is not None:
            problems.append(DamagedRecord("-", "", f"meta {UNVERIFIED_UPTO}: {reason or 'not a number'}"))
        return 0

    def _runs(self) -> tuple[dict[str, dict], list[DamagedRecord], int]:
        """(sound runs by id, damaged runs, number unverified): every `runs` row, by a
        full scan. A file older than version 4 has no run checksums: unverified."""
        names, rows = self._fetch_raw("SELECT * FROM runs")
        self._run_columns = [n for n in names if n != "checksum"]
        good, damaged, unverified = {}, [], 0
        for r in rows:
            row = dict(zip(names, r, strict=True))
            if "checksum" not in row:
                unverified += 1
                reason = None
            else:
                reason = verify_sealed("runs", row)
            if reason or not isinstance(row.get("run_id"), str):
                damaged.append(DamagedRecord(_shown(row.get("run_id")), "", "its row is "
                                             f"damaged ({reason or 'no run id'})"))
            else:
                good[row["run_id"]] = row
        return good, damaged, unverified

    def _counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for rid, status, n in self._conn.execute(
                "SELECT run_id, status, count(*) FROM records NOT INDEXED GROUP BY run_id, status"):
            out.setdefault(rid, {})[status] = n
        return out

    @staticmethod
    def _missing(runs: dict, counts: dict, ids) -> list[DamagedRecord]:
        """Runs (of `ids`) whose stored point count disagrees with the records found."""
        out = []
        for rid in ids:
            want, got = runs[rid].get("points"), sum(counts.get(rid, {}).values())
            if want is not None and want != got:
                out.append(DamagedRecord(rid, "", f"it stored {want} point(s), {got} found "
                                         "(the file is damaged; run `parabench check`)"))
        return out

    @_guarded
    def runs_frame(self):
        """Every sound run, one row each; a damaged run row is skipped with a warning."""
        import pandas as pd

        with self._snapshot():
            runs, damaged, _ = self._runs()
        self.damaged = []
        for d in damaged:
            self._report(d)
        live = [_live_status(r) for r in sorted(runs.values(), key=lambda r: str(r["created_at"]))]
        names = self._run_columns
        return _frame(pd, [tuple(d[n] for n in names) for d in live], names)

    @_guarded
    def status_counts(self) -> dict[str, dict[str, int]]:
        """{run id: {status: number of records}}, counted by SQLite (no sample decoded);
        a run whose count disagrees with the points it stored is warned about."""
        with self._snapshot():
            runs, _, _ = self._runs()
            counts = self._counts()
        for rid, by_status in counts.items():  # no record is decoded here: a damaged
            for status in [k for k in by_status if k not in STATUSES]:  # status is all
                n = by_status.pop(status)  # a flip can make of one, and is never shown
                self._report(DamagedRecord(_shown(rid), "", f"{n} record(s) with a damaged "
                                           f"status {_shown(status)!r}"))
        for d in self._missing(runs, counts, runs):
            self._report(d)
        return counts

    @_guarded
    def records_frame(self, run_ids=None, *, status=None, verify: bool = True):
        """Records joined with their run's commit, machine and preset, one row per point.
        `samples_ms` is decoded into a list.

        Each row is verified on its raw SQLite values (checksum, samples decode, stats
        agree with samples, its run's row sound); a damaged one is left out, warned about
        on stderr and listed in `self.damaged`, as is a run whose records are fewer than
        it stored. `verify=False` skips the checks (and the warnings)."""
        import pandas as pd

        where, args = [], []
        if run_ids:
            where.append(f"run_id IN ({', '.join('?' for _ in run_ids)})")
            args += list(run_ids)
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args += statuses
        sql = ("SELECT * FROM records NOT INDEXED" + (" WHERE " + " AND ".join(where)
                                                      if where else "") + " ORDER BY id")
        with self._snapshot():
            runs, bad_runs, _ = self._runs()
            names, rows = self._fetch_raw(sql, args)
            counts = self._counts() if verify else {}
            upto = self._unverified_upto()
        self.damaged = []
        bad_ids = {d.run_id for d in bad_runs}
        good = []
        for row in rows:
            d = dict(zip(names, row, strict=True))
            run = runs.get(d["run_id"])
            reason = verify_row(d, upto) if verify else None
            if reason is None and run is None:
                reason = ("its run's row is damaged" if d["run_id"] in bad_ids
                          else "its run is missing") if verify else "skip"
            if reason is None:
                good.append(row + tuple(run.get(c) for c, _ in _RUN_COLUMNS))
            elif verify:
                self._report(DamagedRecord(_shown(d["run_id"]), _shown(d["key"]), reason))
        if verify:
            for d in self._missing(runs, counts, [r for r in run_ids or runs if r in runs]):
                self._report(d)
        names = names + [n for _, n in _RUN_COLUMNS]
        df = _frame(pd, good, names)
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

    def _fetch_one(self, sql: str, args=()) -> dict | None:
        """The first raw row of `sql` as a column -> value mapping, or None."""
        names, rows = self._fetch_raw(sql, args)
        return dict(zip(names, rows[0], strict=True)) if rows else None

    def _report(self, damage: DamagedRecord) -> None:
        self.damaged.append(damage)
        print(f"warning: {self.path}: skipping damaged {damage}", file=sys.stderr)

    @_guarded
    def verify_all(self) -> dict:
        """Verify every row of every table, reading nothing into pandas: {"damaged":
        [DamagedRecord], "checked": records verified by checksum, "unverified": records
        migrated from version 1, "unverified_runs": runs of a file older than version 4}."""
        damaged: list[DamagedRecord] = []
        with self._snapshot():
            upto = self._unverified_upto(damaged)
            runs, bad_runs, unverified_runs = self._runs()
            damaged += bad_runs
            names, rows = self._fetch_raw("SELECT * FROM records NOT INDEXED ORDER BY id")
            damaged += self._missing(runs, self._counts(), runs)
            for table in ("peaks", "comparisons") if self.version >= 4 else ():
                t_names, t_rows = self._fetch_raw(f"SELECT * FROM {table}")
                for r in t_rows:
                    row = dict(zip(t_names, r, strict=True))
                    reason = verify_sealed(table, row) or _json_problem(table, row)
                    if reason:
                        what = " ".join(_shown(row.get(c)) for c in
                                        (("machine", "device", "dtype") if table == "peaks"
                                         else ("id",)))
                        damaged.append(DamagedRecord("-", f"{table} {what}", reason))
        checked = unverified = 0
        bad_ids = {d.run_id for d in bad_runs}
        for row in rows:
            d = dict(zip(names, row, strict=True))
            reason = verify_row(d, upto)
            if reason is None and d["run_id"] not in runs:
                reason = ("its run's row is damaged" if d["run_id"] in bad_ids
                          else "its run is missing")
            if reason:
                damaged.append(DamagedRecord(_shown(d.get("run_id")), _shown(d.get("key")), reason))
            elif d.get("checksum") is None:
                unverified += 1
            else:
                checked += 1
        return {"damaged": damaged, "checked": checked, "unverified": unverified,
                "unverified_runs": unverified_runs}

    def integrity_check(self) -> list[str]:
        """SQLite's own structural check: [] when the file is sound, else its findings."""
        try:
            rows = [r[0] for r in self._conn.execute("PRAGMA integrity_check")]
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            return [" ".join(str(e).split())[:160]]
        return [] if rows == ["ok"] else rows


def _json_problem(table: str, row: dict) -> str | None:
    """A sealed comparison whose result is not a JSON object (written so by no parabench)."""
    if table != "comparisons":
        return None
    try:
        return None if isinstance(json.loads(row["result_json"]), dict) else "result_json is not an object"
    except (ValueError, TypeError):
        return "result_json does not decode"


def _shown(v) -> str:
    """A stored value as it can be printed: invalid UTF-8 (surrogate escapes) replaced."""
    return str(v).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


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
