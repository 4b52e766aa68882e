"""Is a stored record still what was written? Checksums and self-consistency of rows.

Every `records` row carries a sha256 over its stored values (`row_checksum`), written
with the row; `verify_row` recomputes it on read and checks the derived statistics
against the raw samples, so a flipped bit never becomes a silently wrong number. Rows
migrated from schema version 1 carry no checksum: they are "unverified", and every
statistic is recomputed from their samples instead. Since version 4 no other row may
lack one (`unverified_upto`: the last id that may), and the other tables (`runs` with
its point count, `peaks`, `comparisons`, `meta`) are sealed the same way
(`verify_sealed`): the environment a result was measured in is part of the result.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from .records import METRIC_COLUMNS, SampleStats

__all__ = ["CHECKSUM_COLUMNS", "SEALED_COLUMNS", "DamagedRecord", "row_checksum",
           "verify_row", "verify_sealed"]

#: Columns of `records` that a row's checksum covers, in a fixed order: everything it
#: stores except its rowid and the checksum itself. NULL columns are left out of the
#: checksummed payload, so a column added later (NULL in old rows) keeps old sums valid.
CHECKSUM_COLUMNS = (
    "run_id", "key", "family", "depth", "batch", "dtype", "mode", "workload", "device",
    "img_size", "width", "status", "reason", "unit", "samples_json", "n", "median_ms",
    "mean_ms", "p10_ms", "p90_ms", "iqr_ms", "noisy", "throughput", "params", "flops",
    "flops_analytic", "peak_mem_allocated", "peak_mem_reserved", "peak_rss",
    *METRIC_COLUMNS, "extra_json", "created_at", "machine", "env_json",
)
#: The columns each other table's checksum covers (all but the checksum), same rules.
SEALED_COLUMNS = {
    "runs": ("run_id", "created_at", "finished_at", "status", "preset", "command",
             "sweep_json", "git_commit", "git_dirty", "machine", "env_json", "host", "pid",
             "heartbeat_at", "points"),
    "peaks": ("machine", "device", "dtype", "tflops", "measured_at", "detail_json"),
    "comparisons": ("id", "created_at", "baseline", "contender", "result_json"),
    "meta": ("name", "value"),
}
_STAT_COLUMNS = ("median_ms", "mean_ms", "p10_ms", "p90_ms", "iqr_ms")


@dataclass(frozen=True)
class DamagedRecord:
    """A record whose stored values fail verification; it is skipped when read."""

    run_id: str
    key: str
    reason: str

    def __str__(self) -> str:
        if not self.key:  # damage to the run as a whole (its row, its point count)
            return f"run {self.run_id}: {self.reason}"
        return f"run {self.run_id} record {self.key}: {self.reason}"


def row_checksum(values: dict, columns=CHECKSUM_COLUMNS) -> str:
    """sha256 over the canonical JSON of [column, value] pairs (`columns` order, NULLs
    left out). Values are as SQLite returns them; REAL and TEXT round-trip exactly
    (floats are written by repr), so a row read back gives the sum it was written with."""
    pairs = [[c, values[c]] for c in columns if values.get(c) is not None]
    text = json.dumps(pairs, separators=(",", ":"), ensure_ascii=True, allow_nan=True,
                      default=repr)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _close(a, b) -> bool:
    return (isinstance(a, (int, float)) and isinstance(b, (int, float))
            and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))


def _bad_text(row: dict) -> str | None:
    """The first column holding text that is not valid UTF-8 (read with surrogate
    escapes): parabench never writes such text, so it is damage, and it cannot be shown."""
    for col, v in row.items():
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return f"{col} is not valid UTF-8 text"
    return None


def verify_sealed(table: str, row: dict) -> str | None:
    """Why a raw row of `table` (runs, peaks, comparisons, meta) is damaged, or None."""
    if row.get("checksum") is None:
        return "no checksum (every row written since schema version 4 has one)"
    if row["checksum"] != row_checksum(row, SEALED_COLUMNS[table]):
        return "checksum mismatch: stored values changed since they were written"
    return _bad_text(row)


def verify_row(row: dict, unverified_upto: int | None = None) -> str | None:
    """Why a raw `records` row (a column -> SQLite value mapping) is damaged, or None if
    it is sound. Checks the checksum when the row has one, that samples and extra decode,
    and that the derived statistics agree with the raw samples. A row without a checksum
    is "unverified" only when its id is at most `unverified_upto` (None: any id, for a
    file of a schema before version 4 read as it is)."""
    stored = row.get("checksum")
    if stored is None and unverified_upto is not None and not (
            isinstance(row.get("id"), int) and row["id"] <= unverified_upto):
        return "no checksum, but only rows migrated from schema version 1 may lack one"
    if stored is not None and stored != row_checksum(row):
        return "checksum mismatch: stored values changed since they were written"
    bad = _bad_text(row)
    if bad:
        return bad
    for col in ("run_id", "key", "status"):
        if not isinstance(row.get(col), str):
            return f"{col} is not text"
    raw = row.get("samples_json")
    try:
        samples = json.loads(raw) if raw is not None else []
    except (ValueError, TypeError):
        return "samples_json does not decode"
    if stored is None:  # unverified: check the shapes the sum would otherwise vouch for
        if not isinstance(samples, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in samples):
            return "samples_json is not a list of numbers"
        extra = row.get("extra_json")
        try:
            if extra is not None and not isinstance(json.loads(extra), dict):
                return "extra_json is not an object"
        except (ValueError, TypeError):
            return "extra_json does not decode"
    if not samples:
        if any(row.get(c) is not None for c in ("n", *_STAT_COLUMNS)):
            return "statistics stored without samples"
        return None
    if row.get("n") != len(samples):
        return f"n {row.get('n')!r} disagrees with the {len(samples)} stored samples"
    ordered = sorted(samples)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    if not _close(row.get("median_ms"), median):
        return f"median_ms {row.get('median_ms')!r} disagrees with the samples ({median!r})"
    if stored is not None:
        return None  # the sum vouches for the rest: it was taken over stats made from samples
    s = SampleStats.from_samples(samples)  # unverified row: every statistic is recomputed
    if row.get("n") != s.n:
        return f"n {row.get('n')!r} disagrees with the {s.n} stored samples"
    for col, want in zip(_STAT_COLUMNS, (s.median, s.mean, s.p10, s.p90, s.iqr), strict=True):
        if not _close(row.get(col), want):
            return f"{col} {row.get(col)!r} disagrees with the samples ({want!r})"
    tp, batch = row.get("throughput"), row.get("batch")
    if tp is not None and isinstance(batch, int) and s.median:
        if not _close(tp, batch / (s.median / 1e3)):
            return f"throughput {tp!r} disagrees with median and batch"
    return None
