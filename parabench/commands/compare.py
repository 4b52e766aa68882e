"""`parabench compare A B`: did B get slower than A? Exit 1 if so, 0 if not, 2 on bad input,
3 when A and B share no benchmark."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._options import add_db, add_out, add_sweep_args, add_turn_args, sweep_from_args
from ._values import memory_budget, positive_float, probability, threshold


def register(sub) -> None:
    from ..regress.render import FORMATS
    from ..regress.verdicts import DEFAULT_ALPHA, DEFAULT_COUNT_THRESHOLD, DEFAULT_THRESHOLD

    p = sub.add_parser(
        "compare", help="compare two runs (or two commits' asv results); exit 1 on regression",
        description="Per benchmark: the ratio B/A with a 95% interval and a test on "
        "independent units (interleaved: pairs of measuring processes, or rounds; "
        "otherwise blocks of about sqrt(n) calls), and a verdict (slower, faster, "
        "unchanged). Instruction counts: the ratio against --count-threshold. A and B are run ids "
        "in the store ('latest', 'latest~1', ...) or git refs with asv results. Exit 1 when "
        "anything got slower or broke, 3 when A and B have no benchmark in common, 0 "
        "otherwise, 2 on bad input.",
    )
    p.add_argument("baseline", metavar="A", help="baseline: run id, latest[~N], or git ref")
    p.add_argument("contender", metavar="B", help="contender: run id, latest[~N], or git ref")
    add_db(p)
    p.add_argument("--asv-results", type=Path, default=None, metavar="DIR",
                   help="treat A and B as git refs and read asv results from DIR "
                   "(default when A/B are not store runs: .asv/results)")
    p.add_argument("--threshold", type=threshold, default=DEFAULT_THRESHOLD,
                   help="minimum relative change that counts (0.1 or 10%%; default %(default)s, "
                   "from interleaved no-change comparisons on the development VM)")
    p.add_argument("--count-threshold", type=threshold, default=DEFAULT_COUNT_THRESHOLD,
                   help="minimum relative change of an instruction count (`parabench count` "
                   "runs, asv's instruction benchmarks); counts repeat to ~0.3%% "
                   "(default %(default)s)")
    p.add_argument("--alpha", type=probability, default=DEFAULT_ALPHA,
                   help="significance level of the per-benchmark test (default %(default)s)")
    p.add_argument("--format", choices=FORMATS, default="text", help="default: text")
    add_out(p, "also write the rendered report to PATH")
    p.add_argument("--output", dest="out", type=Path, help=argparse.SUPPRESS)  # old name
    p.add_argument("--allow-mixed", action="store_true",
                   help="compare results from different machines/environments (flagged)")
    p.add_argument("--machine", default=None,
                   help="asv machine name, when the commits have results on several")
    p.add_argument("--repo", default=".", help="git repository to resolve refs in (default: .)")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="do not record the comparison in the store")
    ab = p.add_argument_group(
        "interleaved measurement",
        "--interleave measures A and B now, alternately: A and B are git refs (or WORKTREE, "
        "the working tree as it is), each exported and run in its own process; the two "
        "processes take turns of --turn-ms, so drifts of machine speed hit both equally. "
        "What to measure comes from the sweep flags (default: the quick preset). Both "
        "sides are stored as runs, then compared. Each side is measured by its own "
        "checkout's worker (parabench/executors/worker.py, or parabench/regress/worker.py "
        "in older commits): commits older than both cannot be measured this way.")
    ab.add_argument("--interleave", action="store_true",
                    help="measure A and B alternately now instead of reading stored results")
    add_turn_args(ab)
    ab.add_argument("--point-timeout", type=positive_float, metavar="SECONDS",
                    help="a side's worker that takes longer than this to build a point or "
                    "to time one turn is killed: that side's point becomes an error row, a "
                    "new worker goes on; default: no limit")
    ab.add_argument("--memory-limit", type=memory_budget, metavar="SIZE",
                    help="address space each side's worker may add (e.g. 8G; CPU only); "
                    "default: half the memory available, shared by the two")
    add_sweep_args(ab, timing=False)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..errors import UsageError
    from ..regress.compare import run_compare
    from ..regress.render import exit_code, render

    a, b = args.baseline, args.contender
    if args.interleave:
        a, b = _interleave(args)
    result = run_compare(
        a, b, db=args.db, asv_results=args.asv_results,
        repo=args.repo, threshold=args.threshold, alpha=args.alpha,
        allow_mixed=args.allow_mixed, machine=args.machine, save=args.save,
        count_threshold=args.count_threshold,
    )
    text = render(result, args.format)
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        except OSError as e:
            raise UsageError(f"cannot write {args.out}: {e}") from None
    if args.format == "text" and sys.stdout.isatty():
        text = render(result, args.format, color=True)
    sys.stdout.write(text)
    return exit_code(result)


def _interleave(args) -> tuple[str, str]:
    import shlex

    from ..errors import UsageError
    from ..regress.interleave import Arm, interleaved_runs
    from ..runner import preflight
    from ..store import Store

    if args.asv_results is not None:
        raise UsageError("--interleave measures now; it does not read --asv-results")
    sweep = preflight(sweep_from_args(args))  # bad flags refused before any file is made
    with Store(args.db) as store:
        a, b = interleaved_runs(
            [Arm(args.baseline), Arm(args.contender)], sweep, store=store, repo=args.repo,
            rounds=sweep.rounds, processes=sweep.processes, turn_ms=sweep.turn_ms,
            point_timeout=args.point_timeout, memory_limit=args.memory_limit,
            command="parabench compare " + shlex.join(sys.argv[2:]),
            log=(lambda m: print(m, file=sys.stderr)) if args.progress else (lambda m: None),
        )
    return a, b
