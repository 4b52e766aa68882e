"""`parabench count`: instructions per forward under Callgrind, stored as a run.

A deterministic CPU signal for CI and history (see parabench/measure/instructions.py
for what it catches and what it misses). Compare two count runs with `compare`.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

from ..measure.instructions import DEFAULT_NUMBER, DEFAULT_REPEATS
from ._options import DefaultsHelp, add_db, add_sweep_args, sweep_flags_given, sweep_from_args
from ._values import positive_int, worker_count

#: Without sweep flags: two telling points, one per kind of model.
DEFAULT_FAMILIES = ("paraformer-fused", "vit")
DEFAULT_DEPTHS = (4,)


def register(sub) -> None:
    p = sub.add_parser(
        "count", help="count instructions per forward under valgrind (deterministic, CPU)",
        description="Count the instructions one forward executes (valgrind's Callgrind, "
        "instrumenting only the counted forwards) for a few points and store them as a run "
        "of their own (unit: instructions). Counts repeat to ~0.3% between processes where timings "
        "drift by tens of percent, so `compare` of two count runs catches a few percent of "
        "extra compute; they miss memory-bound and GPU regressions. Without sweep flags it "
        "counts paraformer-fused and vit at depth 4 of the quick preset. Each point costs "
        "one to two minutes alone on a quiet machine (torch's import under valgrind, then "
        "forwards at Callgrind's speed), several times that when jobs share the cores; "
        "--jobs points are counted at once.",
        formatter_class=DefaultsHelp,
    )
    add_sweep_args(p, timing=False)
    p.add_argument("--ref", default=None, metavar="REF",
                   help="git ref whose code is counted (exported with git archive), or "
                   "WORKTREE; default: the code of this parabench")
    p.add_argument("--repo", default=".", type=Path, help="git repository that --ref names")
    p.add_argument("--jobs", type=worker_count, default=2, help="points counted at once")
    p.add_argument("--number", type=positive_int, default=DEFAULT_NUMBER,
                   help="forwards per repeat")
    p.add_argument("--repeats", type=positive_int, default=DEFAULT_REPEATS,
                   help="counted repeats per point (one valgrind process)")
    add_db(p)
    p.set_defaults(func=main)


def main(args) -> int:
    import tempfile

    from ..environment import collect
    from ..errors import UsageError
    from ..executors import PassSpec, make_executor
    from ..measure.instructions import require_valgrind
    from ..regress.checkouts import WORKTREE, checkout
    from ..runner import preflight, run_sweep
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
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="parabench-count-") as tmp:
        source = None
        if args.ref is not None:
            source, commit, dirty = checkout(args.ref, args.repo, Path(tmp) / "src")
            if args.ref == WORKTREE:
                source = source.resolve()
            env["git"] = {"commit": commit or None, "dirty": dirty}
        # one worker per job: each count is a valgrind process of its own, started by
        # its worker; the runner commits each count as it comes back, in any order
        spec = PassSpec(kind="instructions", number=args.number, repeats=args.repeats,
                        source=None if source is None else str(source))
        executor = make_executor("process", passes=spec, workers=args.jobs, log=log)
        log(f"counting {len(sweep.points())} points, {args.jobs} at a time (minutes each "
            "under valgrind)")
        with Store(args.db) as store:
            run_id = run_sweep(
                sweep, store, executor=executor, progress=args.progress, log=log, env=env,
                command="python -m parabench " + shlex.join(sys.argv[1:]),
                preset=f"counts:{sweep.name}",
                run_info={"counts": {"ref": args.ref, "number": args.number,
                                     "repeats": args.repeats}})
            recs = store.records_frame([run_id])
    for rec in recs.sort_values("key").itertuples():
        what = (f"{rec.median_ms:,.0f} instructions/forward" if rec.status == "ok"
                else f"{rec.status}: {rec.reason}")
        print(f"{rec.key}  {what}")
    print(f"run {run_id}")
    return 0 if (recs["status"] == "ok").all() else 1
