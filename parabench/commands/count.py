"""`parabench count`: instructions per forward under Callgrind, stored as a run.

A deterministic CPU signal for CI and history (see parabench/measure/instructions.py
for what it catches and what it misses). Compare two count runs with `compare`.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

from ._options import DefaultsHelp, add_db, add_sweep_args, sweep_flags_given, sweep_from_args
from ._values import positive_int, worker_count

#: Without sweep flags: two telling points, one per kind of model.
DEFAULT_FAMILIES = ("paraformer-fused", "vit")
DEFAULT_DEPTHS = (4,)


def register(sub) -> None:
    p = sub.add_parser(
        "count", help="count instructions per forward under valgrind (deterministic, CPU)",
        description="Count the instructions one forward executes (valgrind's Callgrind "
        "through torch.utils.benchmark) for a few points and store them as a run of their "
        "own (unit: instructions). Counts repeat to ~0.3% between processes where timings "
        "drift by tens of percent, so `compare` of two count runs catches a few percent of "
        "extra compute; they miss memory-bound and GPU regressions. Without sweep flags it "
        "counts paraformer-fused and vit at depth 4 of the quick preset. Each point costs "
        "minutes, mostly valgrind's start-up (70 s alone on a quiet machine, 10-30 min "
        "when four jobs share two cores); --jobs points are counted at once.",
        formatter_class=DefaultsHelp,
    )
    add_sweep_args(p, timing=False)
    p.add_argument("--ref", default=None, metavar="REF",
                   help="git ref whose code is counted (exported with git archive), or "
                   "WORKTREE; default: the code of this parabench")
    p.add_argument("--repo", default=".", type=Path, help="git repository that --ref names")
    p.add_argument("--jobs", type=worker_count, default=2, help="points counted at once")
    p.add_argument("--number", type=positive_int, default=20, help="forwards per repeat")
    p.add_argument("--repeats", type=positive_int, default=2,
                   help="counted repeats per point (one valgrind process)")
    add_db(p)
    p.set_defaults(func=main)


def main(args) -> int:
    import tempfile

    from ..environment import collect
    from ..errors import UsageError
    from ..measure.instructions import count_points, require_valgrind
    from ..progress import SweepProgress
    from ..regress.interleave import WORKTREE, checkout
    from ..runner import preflight
    from ..store import Store

    sweep = sweep_from_args(args)
    if not sweep_flags_given(args):
        sweep = replace(sweep, name="counts", families=DEFAULT_FAMILIES, depths=DEFAULT_DEPTHS)
    if sweep.device != "cpu":
        raise UsageError("count measures CPU code only (valgrind cannot see GPU work); "
                         "use --device cpu")
    sweep = preflight(sweep)
    require_valgrind()
    env = collect()
    with tempfile.TemporaryDirectory(prefix="parabench-count-") as tmp:
        source = None
        if args.ref is not None:
            source, commit, dirty = checkout(args.ref, args.repo, Path(tmp) / "src")
            if args.ref == WORKTREE:
                source = source.resolve()
            env["git"] = {"commit": commit or None, "dirty": dirty}
        store = Store(args.db)
        run_id = store.start_run(sweep={**sweep.to_dict(), "counts": {
            "ref": args.ref, "number": args.number, "repeats": args.repeats}},
            preset=f"counts:{sweep.name}", command="python -m parabench "
            + shlex.join(sys.argv[1:]), env=env)
        points = sweep.points()
        print(f"run {run_id}: counting {len(points)} points, {args.jobs} at a time "
              f"(minutes each under valgrind) into {store.path}", file=sys.stderr)
        status = "failed"
        bar = SweepProgress(len(points), 0, enabled=args.progress)
        try:
            with bar:
                def done(rec):
                    store.add_record(run_id, rec)
                    bar.finished(rec)

                recs = count_points(points, sweep, source=source, jobs=args.jobs,
                                    number=args.number, repeats=args.repeats, on_done=done)
            status = "finished"
        finally:
            store.finish_run(run_id, status)
    for rec in sorted(recs, key=lambda r: r.key):
        what = f"{rec.stats.median:,.0f} instructions/forward" if rec.stats else \
            f"{rec.status}: {rec.reason}"
        print(f"{rec.key}  {what}")
    print(f"run {run_id}")
    return 0 if all(r.status == "ok" for r in recs) else 1
