"""`parabench list`: runs in the store, model families, presets."""
from __future__ import annotations

from ._options import add_db


def register(sub) -> None:
    p = sub.add_parser("list", help="list runs, families or presets",
                       description="List the runs stored in the database (default), the model "
                       "families, or the presets and their sizes.")
    p.add_argument("what", nargs="?", default="runs", choices=("runs", "families", "presets"))
    add_db(p)
    p.set_defaults(func=main)


def main(args) -> int:
    if args.what == "families":
        from ..catalog import __doc__ as doc
        from ..config import FAMILIES

        print("\n".join(FAMILIES))
        print("\n" + doc.split("\n\n", 1)[1].strip())
        return 0
    if args.what == "presets":
        from ..config import PRESETS

        for name, s in PRESETS.items():
            print(f"{name:<6} {len(s.points()):>5} points on {s.device}: "
                  f"{', '.join(s.families)}; depths {list(s.depths)}; batches "
                  f"{list(s.batches)}; {', '.join(s.dtypes)}; {', '.join(s.modes)}; "
                  f"{', '.join(s.workloads)}")
        return 0
    return _list_runs(args)


def _list_runs(args) -> int:
    from ..store import Store

    with Store(args.db, create=False) as store:
        runs = store.runs_frame()
        counts = store.records_frame()[["run_id", "status"]].value_counts().unstack(fill_value=0)
    if runs.empty:
        print(f"no runs in {store.path}")
        return 0
    print(f"{'run':<25} {'status':<12} {'preset':<14} {'points':>6}  {'commit':<9} machine")
    for r in runs.itertuples():
        c = counts.loc[r.run_id] if r.run_id in counts.index else None
        n = int(c.sum()) if c is not None else 0
        bad = {k: int(v) for k, v in (c.items() if c is not None else []) if k != "ok" and v}
        detail = f" ({', '.join(f'{v} {k}' for k, v in bad.items())})" if bad else ""
        commit = (r.git_commit or "")[:8] + ("+" if r.git_dirty else "")
        print(f"{r.run_id:<25} {r.status:<12} {r.preset or '':<14} {n:>6}  {commit:<9} "
              f"{r.machine}{detail}")
    return 0
