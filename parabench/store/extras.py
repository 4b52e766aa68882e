"""The two small tables beside runs and records: each machine's measured peak
throughput (`peaks`) and what the last `parabench compare` concluded (`comparisons`).
Both are sealed like every row (see sealing.py); a damaged row is warned about and read
as absent (a peak is then measured again; a report goes without the comparison)."""
from __future__ import annotations

import json
import sys

from ..integrity import verify_sealed
from .connection import _guarded
from .sealing import seal


class _Extras:
    """Peaks and comparisons, a part of `Store` (which provides `path`, `_conn`,
    `version`, `transaction` and `_fetch_one`)."""

    def _damaged_extra(self, what: str, row: dict) -> str | None:
        reason = verify_sealed(what, row) if self.version >= 4 else None
        if reason is None and what == "comparisons":
            try:
                if not isinstance(json.loads(row["result_json"]), dict):
                    reason = "result_json is not an object"
            except (ValueError, TypeError):
                reason = "result_json does not decode"
        if reason:
            print(f"warning: {self.path}: ignoring damaged {what} row ({reason}); "
                  f"run `parabench check --db {self.path}`", file=sys.stderr)
        return reason

    @_guarded
    def get_peak(self, machine: str, device: str, dtype: str) -> float | None:
        row = self._fetch_one(
            "SELECT * FROM peaks WHERE machine=? AND device=? AND dtype=?", (machine, device, dtype))
        if row is None or self._damaged_extra("peaks", row):
            return None
        return row["tflops"]

    @_guarded
    def set_peak(self, machine: str, device: str, dtype: str, tflops: float, detail=None) -> None:
        from .database import utc_now

        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO peaks (machine, device, dtype, tflops, measured_at,"
                      " detail_json) VALUES (?,?,?,?,?,?)",
                      (machine, device, dtype, tflops, utc_now(), json.dumps(detail or {})))
            seal(c, "peaks", (machine, device, dtype))

    @_guarded
    def add_comparison(self, baseline: str, contender: str, result: dict) -> None:
        from .database import utc_now

        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO comparisons (created_at, baseline, contender, result_json)"
                " VALUES (?,?,?,?)",
                (utc_now(), baseline, contender, json.dumps(result, default=str)))
            seal(c, "comparisons", (cur.lastrowid,))

    @_guarded
    def latest_comparison(self) -> dict | None:
        row = self._fetch_one("SELECT * FROM comparisons ORDER BY id DESC LIMIT 1")
        if row is None or self._damaged_extra("comparisons", row):
            return None
        return {"created_at": row["created_at"], "baseline": row["baseline"],
                "contender": row["contender"], "result": json.loads(row["result_json"])}
