"""`parabench list`: runs in the store, model families, presets."""
from __future__ import annotations

from ._options import add_db
from ._table import print_table


def register(sub) -> None:
    p = sub.add_parser("list", help="list runs, families or presets",
                       description="List the runs stored in the database (default), the model "
                       "families, or the presets and their sizes.")
    p.add_argument("what", nargs="?", default="runs", choices=("runs", "families", "presets"))
    add_db(p)
    p.set_defaults(func=main)


def main(args) -> int:
    if args.what == "families":
        from ..config import FAMILIES
        from ..families import __doc__ as doc

        print("\n".join(FAMILIES))
        print("\n" + doc.split("\n\n", 1)[1].strip())
        return 0
    if args.what == "presets":
        from ..config import PRESETS

        print_table(("preset", "points", "device", "width", "families", "depths", "batches",
                     "dtypes", "modes", "workloads"),
                    [(name, str(len(s.points())), s.device, s.width, ", ".join(s.families),
                      _ints(s.depths), _ints(s.batches), ", ".join(s.dtypes),
                      ", ".join(s.modes), ", ".join(s.workloads))
                     for name, s in PRESETS.items()], right=("points",))
        return 0
    return _list_runs(args)


def _list_runs(args) -> int:
    from ..store import Store

    with Store(args.db, create=False, readonly=True) as store:
        runs = store.runs_frame()
        counts = store.status_counts()
    if runs.empty:
        print(f"no runs in {store.path}")
        return 0
    rows = []
    for r in runs.itertuples():
        c = counts.get(r.run_id, {})
        bad = ", ".join(f"{n} {k}" for k, n in sorted(c.items()) if k != "ok" and n)
        commit = (r.git_commit or "")[:8] + ("+" if r.git_dirty else "")
        rows.append((r.run_id, r.status, r.preset or "", str(sum(c.values())), commit,
                     str(r.machine or "") + (f" ({bad})" if bad else "")))
    print_table(("run", "status", "preset", "points", "commit", "machine"), rows,
                right=("points",))
    return 0


def _ints(values) -> str:
    return ",".join(map(str, values))
