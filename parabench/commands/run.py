"""`parabench run`: measure a sweep (a preset, a TOML file, flags) into the store."""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from ._options import add_db, add_sweep_args, sweep_from_args


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
                   help="continue an interrupted run: its stored sweep, skipping finished points")
    p.add_argument("--profile", action="store_true",
                   help="also record a torch.profiler trace per point (separate pass)")
    p.add_argument("--trace-dir", default="traces", help="where --profile writes traces")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..config import sweep_from_dict
    from ..measure.passes import extra_passes
    from ..runner import preflight, run_sweep
    from ..store import Store

    if args.resume:
        store = Store(args.db, create=False)
        sweep = sweep_from_dict(json.loads(store.run(args.resume)["sweep_json"]))
    else:
        # bad flags are refused before any file is made
        sweep = preflight(sweep_from_args(args))
        store = Store(args.db)
    passes = extra_passes(sweep, profile=args.profile, telemetry=args.telemetry,
                          trace_dir=args.trace_dir, store=store)
    command = "python -m parabench " + shlex.join(sys.argv[1:])
    run_id = run_sweep(sweep, store, command=command, resume=args.resume, passes=passes,
                       progress=args.progress, log=lambda m: print(m, file=sys.stderr))
    print(run_id)
    return 0
