"""`parabench run`: measure a sweep (a preset, a TOML file, flags) into the store."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..errors import one_line
from ..outputs import prepare_output_dir, safe_name
from ._options import add_db, add_sweep_args, sweep_flags_given, sweep_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="measure a sweep and store every point",
        description="Sweep model families over depth, batch, dtype, execution mode and "
        "workload; each point is committed to the database as soon as it finishes. "
        "Flags override the preset or --config file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_sweep_args(p)
    add_db(p)
    p.add_argument("--resume", metavar="RUN_ID",
                   help="continue an interrupted run ('latest' for the newest): its stored "
                   "sweep, skipping finished points")
    p.add_argument("--profile", action="store_true",
                   help="also record a torch.profiler trace per point (separate pass)")
    p.add_argument("--trace-dir", default="traces", help="where --profile writes traces")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..measure.passes import extra_passes
    from ..runner import preflight, run_sweep
    from ..store import Store

    if args.resume:
        store = Store(args.db, create=False)
        args.resume = store.resolve_run(args.resume)  # 'latest' and 'latest~N' too
        sweep = preflight(_stored_sweep(store, args.resume, args))
    else:
        sweep = preflight(sweep_from_args(args))  # bad flags: refused before any file is made
    if args.profile:
        if args.resume:
            safe_name(args.resume)  # it names the trace folder: refuse '../x' up front
        prepare_output_dir(Path(args.trace_dir), "--trace-dir")
    if not args.resume:
        store = Store(args.db)
    passes = extra_passes(sweep, profile=args.profile, telemetry=args.telemetry,
                          trace_dir=args.trace_dir, store=store)
    command = "python -m parabench " + shlex.join(sys.argv[1:])
    run_id = run_sweep(sweep, store, command=command, resume=args.resume, passes=passes,
                       progress=args.progress, log=lambda m: print(m, file=sys.stderr))
    print(run_id)
    return 0


def _stored_sweep(store, run_id: str, args):
    """The sweep a run was started with; refused in one line when flags try to change
    it, when the run is not a sweep, or when what is stored cannot be read back."""
    from ..config import sweep_from_dict
    from ..errors import UsageError

    given = sweep_flags_given(args)
    if given:
        raise UsageError(f"--resume continues run {run_id} with its stored sweep; "
                         f"{', '.join(given)} cannot change it (start a new run instead)")
    row = store.run(run_id)
    try:
        stored = json.loads(row["sweep_json"] or "null")
    except ValueError:
        stored = None
    if isinstance(stored, dict) and "interleaved" in stored:
        raise UsageError(f"run {run_id} was measured by `compare --interleave`; an "
                         f"interleaved comparison cannot be resumed: run the compare again")
    if not isinstance(stored, dict):
        raise UsageError(f"run {run_id} has no readable stored sweep; it cannot be resumed")
    try:
        return sweep_from_dict(stored).validate()
    except (UsageError, TypeError, ValueError, AttributeError) as e:
        why = str(e) if isinstance(e, UsageError) else one_line(e)
        raise UsageError(f"run {run_id}: its stored sweep is damaged or from another "
                         f"version ({why}); it cannot be resumed") from None
