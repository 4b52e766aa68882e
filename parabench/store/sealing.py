"""Writing checksums: every row parabench writes is sealed (its checksum stored beside
it, taken over the row as SQLite holds it, read back in the same transaction), and a
row that is changed is resealed only if it was sound before the change, so an update
never launders damage into a valid sum. A run's row also holds how many points (records)
it stored, so a read that finds fewer can say so.

`meta` holds one sealed number: the last record id that may lack a checksum (rows
migrated from schema version 1); any later row without one is damaged."""
from __future__ import annotations

from ..integrity import CHECKSUM_COLUMNS, SEALED_COLUMNS, row_checksum, verify_row, verify_sealed

#: The key of each table's rows, as used to find one row again.
_KEYS = {"runs": ("run_id",), "peaks": ("machine", "device", "dtype"), "comparisons": ("id",),
         "meta": ("name",), "records": ("run_id", "key")}
UNVERIFIED_UPTO = "unverified_records_upto"


def raw_row(c, table: str, key: tuple) -> dict | None:
    where = " AND ".join(f"{k}=?" for k in _KEYS[table])
    cur = c.execute(f"SELECT * FROM {table} WHERE {where}", key)
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def _checksum(table: str, row: dict) -> str:
    return row_checksum(row, CHECKSUM_COLUMNS if table == "records" else SEALED_COLUMNS[table])


def seal(c, table: str, key: tuple) -> None:
    """Store the checksum of the row as SQLite now holds it."""
    row = raw_row(c, table, key)
    if row is not None:
        where = " AND ".join(f"{k}=?" for k in _KEYS[table])
        c.execute(f"UPDATE {table} SET checksum=? WHERE {where}", (_checksum(table, row), *key))


def sound(table: str, row: dict | None, upto: int | None = None) -> bool:
    if row is None:
        return False
    if table == "records":  # an unverified (v1) record stays unverified
        return row.get("checksum") is not None and verify_row(row, upto) is None
    return verify_sealed(table, row) is None


def update(c, table: str, key: tuple, sets: dict, where_extra: str = "") -> None:
    """UPDATE one row with `sets`, resealing it only if it was sound before."""
    was_sound = sound(table, raw_row(c, table, key))
    where = " AND ".join(f"{k}=?" for k in _KEYS[table]) + where_extra
    cur = c.execute(f"UPDATE {table} SET {', '.join(f'{k}=?' for k in sets)} WHERE {where}",
                    (*sets.values(), *key))
    if cur.rowcount and was_sound:
        seal(c, table, key)


def count_points(c, run_id: str) -> int:
    return c.execute("SELECT count(*) FROM records WHERE run_id=?", (run_id,)).fetchone()[0]


def update_run(c, run_id: str, where_extra: str = "", **sets) -> None:
    """Change a run's row (status, heartbeat...) and recount its points, resealed."""
    update(c, "runs", (run_id,), {**sets, "points": count_points(c, run_id)}, where_extra)


def set_meta(c, name: str, value: int) -> None:
    c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))
    seal(c, "meta", (name,))


def seal_all_unsealed(c) -> None:
    """On migration to version 4: runs (with their point counts), peaks and comparisons
    had no checksum; they are sealed as they are now (damage from before cannot be told
    apart, damage from now on can). Records keep theirs: a version-1 record stays
    unverified, and `meta` says which ids may."""
    for (run_id,) in c.execute("SELECT run_id FROM runs WHERE checksum IS NULL").fetchall():
        c.execute("UPDATE runs SET points=? WHERE run_id=?", (count_points(c, run_id), run_id))
        seal(c, "runs", (run_id,))
    for table in ("peaks", "comparisons"):
        cols = ", ".join(_KEYS[table])
        for key in c.execute(f"SELECT {cols} FROM {table} WHERE checksum IS NULL").fetchall():
            seal(c, table, tuple(key))
    upto = c.execute("SELECT max(id) FROM records WHERE checksum IS NULL").fetchone()[0]
    set_meta(c, UNVERIFIED_UPTO, upto or 0)
