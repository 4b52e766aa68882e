"""Is a stored record still what was written? Checksums and self-consistency of rows.

Every `records` row carries a sha256 over its stored values (`row_checksum`), written
with the row; `verify_row` recomputes it on read and checks the derived statistics
against the raw samples, so a flipped bit never becomes a silently wrong number. Rows
from before schema version 2 carry no checksum: they are "unverified", and every
statistic is recomputed from their samples instead.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from .records import METRIC_COLUMNS, SampleStats

__all__ = ["CHECKSUM_COLUMNS", "DamagedRecord", "row_checksum", "verify_row"]

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
_STAT_COLUMNS = ("median_ms", "mean_ms", "p10_ms", "p90_ms", "iqr_ms")


@dataclass(frozen=True)
class DamagedRecord:
    """A record whose stored values fail verification; it is skipped when read."""

    run_id: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"run {self.run_id} record {self.key}: {self.reason}"


def row_checksum(values: dict) -> str:
    """sha256 over the canonical JSON of [column, value] pairs (CHECKSUM_COLUMNS order,
    NULLs left out). Values are as SQLite returns them; REAL and TEXT round-trip exactly
    (floats are written by repr), so a row read back gives the sum it was written with."""
    pairs = [[c, values[c]] for c in CHECKSUM_COLUMNS if values.get(c) is not None]
    text = json.dumps(pairs, separators=(",", ":"), ensure_ascii=True, allow_nan=True,
                      default=repr)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _close(a, b) -> bool:
    return (isinstance(a, (int, float)) and isinstance(b, (int, float))
            and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))


def verify_row(row: dict) -> str | None:
    """Why a raw `records` row (a column -> SQLite value mapping) is damaged, or None if
    it is sound. Checks the checksum when the row has one, that samples and extra decode,
    and that the derived statistics agree with the raw samples."""
    stored = row.get("checksum")
    if stored is not None and stored != row_checksum(row):
        return "checksum mismatch: stored values changed since they were written"
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
