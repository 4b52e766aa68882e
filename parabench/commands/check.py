"""`parabench check`: is the results database whole? SQLite's integrity check plus a
verification of every record (checksum, samples decode, statistics agree with samples).
Exit 0 when all is well, 1 when anything is damaged, 2 on bad input."""
from __future__ import annotations

from ._options import add_db


def register(sub) -> None:
    p = sub.add_parser("check", help="verify the database and every record",
                       description="Run SQLite's integrity check and verify every record's "
                       "checksum and statistics; list what is damaged (run, key, reason). "
                       "Exit status 1 when anything is damaged. Writes nothing.")
    add_db(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..store import DamagedDatabase, Store

    try:
        with Store(args.db, create=False, readonly=True) as store:
            path = store.path
            problems = store.integrity_check()
            damaged, checked, unverified = store.verify_records()
    except DamagedDatabase as e:
        print(f"damaged: {e}")
        return 1
    for p in problems:
        print(f"damaged: {path}: integrity check: {p}")
    for d in damaged:
        print(f"damaged: {d}")
    note = f", {unverified} unverified (written before checksums)" if unverified else ""
    if problems or damaged:
        print(f"{path}: {len(damaged)} damaged record(s), {checked} verified{note}"
              + (f"; integrity check found {len(problems)} problem(s)" if problems else ""))
        return 1
    print(f"{path}: ok, {checked} record(s) verified{note}")
    return 0
