"""`parabench run`: measure a sweep (a preset, a TOML file, flags) into the store."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ..errors import one_line
from ..executors.memory_guard import DEFAULT_FRACTION
from ..outputs import prepare_output_dir, safe_name
from ._options import DefaultsHelp, add_db, add_sweep_args, add_turn_args, sweep_flags_given, sweep_from_args
from ._values import memory_budget, non_empty, positive_float, worker_count


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="measure a sweep and store every point",
        description="Sweep model families over depth, batch, dtype, execution mode and "
        "workload; each point is committed to the database as soon as it finishes. "
        "Flags override the preset or --config file.",
        formatter_class=DefaultsHelp,
    )
    add_sweep_args(p)
    add_turn_args(p.add_argument_group("an interleaved schedule"), schedule=True)
    add_db(p)
    p.add_argument("--resume", metavar="RUN_ID", type=non_empty,
                   help="continue an interrupted run ('latest' for the newest): its stored "
                   "sweep, skipping finished points")
    p.add_argument("--profile", action="store_true",
                   help="also record a torch.profiler trace per point (separate pass)")
    p.add_argument("--trace-dir", default="traces", help="where --profile writes traces")
    add_executor_args(p)
    p.set_defaults(func=main)


def add_executor_args(p) -> None:
    """Where points run (see parabench/executors)."""
    from ..executors import EXECUTORS

    g = p.add_argument_group("where points run")
    g.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="inline: in this process; process (the default): isolated worker "
                   "processes under a memory guard, a crashed worker becomes an error row; "
                   "ray: Ray tasks on a cluster (pip install -e '.[ray]')")
    g.add_argument("--workers", type=worker_count, metavar="N",
                   help="worker processes (process: default one per GPU, one on CPU; ray: "
                   "CPUs of the local cluster started for the run)")
    g.add_argument("--memory-limit", type=memory_budget, metavar="SIZE",
                   help="address space each process worker may add (e.g. 8G); default "
                   f"{int(DEFAULT_FRACTION * 100)}%% of the memory available at the start, "
                   "shared by the workers; not applied on CUDA")
    g.add_argument("--point-timeout", type=positive_float, metavar="SECONDS",
                   help="process executor: a point still measuring after this long (build, "
                   "warm-up, compile and timing) has its worker killed and becomes an error "
                   "row, and a new worker goes on with the sweep; default: no limit")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="a running Ray cluster (host:port, or 'auto'); implies --executor ray; "
                   "without it, --executor ray starts a local cluster for the run")


def main(args) -> int:
    from ..executors import PassSpec, make_executor
    from ..runner import preflight, run_sweep
    from ..store import Store

    name = _executor_name(args)

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
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    # absolute: a worker (a Ray worker above all) may run in another directory
    spec = PassSpec(profile=args.profile, telemetry=args.telemetry,
                    trace_dir=str(Path(args.trace_dir).resolve()), db=str(store.path.resolve()))
    executor = make_executor(name, passes=spec, workers=args.workers,
                             memory_limit=args.memory_limit, ray_address=args.ray_address,
                             point_timeout=args.point_timeout, log=log)
    command = "python -m parabench " + shlex.join(sys.argv[1:])
    with store:  # closing checkpoints: the database file alone is then complete
        run_id = run_sweep(sweep, store, command=command, resume=args.resume,
                           executor=executor, progress=args.progress, log=log)
    print(run_id)
    return 0


def _executor_name(args) -> str:
    """--executor, with --ray-address meaning ray; contradictions refused up front."""
    from ..errors import UsageError
    from ..executors import default_executor

    if args.ray_address and args.executor not in (None, "ray"):
        raise UsageError(f"--ray-address is for --executor ray, not {args.executor}")
    if args.memory_limit and args.executor in ("inline", "ray"):
        raise UsageError(f"--memory-limit guards process workers; --executor {args.executor} "
                         "does not apply it")
    if args.point_timeout and (args.executor == "inline" or args.ray_address
                               or args.executor == "ray"):
        where = "inline" if args.executor == "inline" else "ray"
        raise UsageError(f"--point-timeout stops process workers; --executor {where} "
                         "cannot stop a point that hangs")
    if args.workers and args.executor == "inline":
        raise UsageError("--workers is for --executor process or ray; inline has one")
    if args.ray_address:
        return "ray"
    return args.executor or default_executor(args.device or "")


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
    if isinstance(stored, dict) and ("interleaved" in stored
                                     or stored.get("schedule") == "interleaved"):
        raise UsageError(f"run {run_id} was measured in turns (interleaved); its turns "
                         f"must be taken together, so it cannot be resumed: measure again")
    if isinstance(stored, dict) and "counts" in stored:
        raise UsageError(f"run {run_id} holds instruction counts (`parabench count`); "
                         f"`run --resume` measures latencies: count again instead")
    if not isinstance(stored, dict):
        raise UsageError(f"run {run_id} has no readable stored sweep; it cannot be resumed")
    try:
        return sweep_from_dict(stored).validate()
    except (UsageError, TypeError, ValueError, AttributeError) as e:
        why = str(e) if isinstance(e, UsageError) else one_line(e)
        raise UsageError(f"run {run_id}: its stored sweep is damaged or from another "
                         f"version ({why}); it cannot be resumed") from None
