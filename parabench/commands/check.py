"""`parabench check`: is the results database whole? SQLite's integrity check plus a
verification of every row of every table: records (checksum, samples decode, statistics
agree with samples), runs (checksum, the number of points each stored), peaks,
comparisons. Exit 0 when all is well, 1 when anything is damaged, 2 on bad input."""
from __future__ import annotations

from ._options import add_db


def register(sub) -> None:
    p = sub.add_parser("check", help="verify the database and every record",
                       description="Run SQLite's integrity check and verify every row's "
                       "checksum (records, runs, peaks, comparisons), every record's "
                       "statistics and every run's point count; list what is damaged (run, "
                       "key, reason). Exit status 1 when anything is damaged. Writes nothing.")
    add_db(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..store import DamagedDatabase, Store

    try:
        with Store(args.db, create=False, readonly=True) as store:
            path, notes = store.path, store.notes
            problems = store.integrity_check()
            found = store.verify_all()
    except DamagedDatabase as e:
        print(f"damaged: {e}")
        return 1
    damaged = found["damaged"]
    for p in problems:
        print(f"damaged: {path}: integrity check: {p}")
    for d in damaged:
        print(f"damaged: {d}")
    for n in notes:
        print(f"incomplete: {n}")
    note = ""
    if found["unverified"]:
        note += f", {found['unverified']} unverified (migrated from before checksums)"
    if found["unverified_runs"]:
        note += (f", {found['unverified_runs']} run(s) unverified (schema before version 4;"
                 " a writer seals them)")
    if problems or damaged or notes:
        print(f"{path}: {len(damaged)} damaged row(s), {found['checked']} record(s) "
              f"verified{note}"
              + (f"; integrity check found {len(problems)} problem(s)" if problems else "")
              + ("; part of the file could not be read" if notes else ""))
        return 1
    print(f"{path}: ok, {found['checked']} record(s) verified{note}")
    return 0
