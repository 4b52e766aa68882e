"""`parabench run`: measure a sweep (a preset, a TOML file, flags) into the store."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace

from ._common import add_db, int_list, str_list

#: flag dest -> Sweep field, for flags that override the preset / file
_OVERRIDES = {
    "families": "families", "depths": "depths", "batches": "batches", "dtypes": "dtypes",
    "modes": "modes", "workloads": "workloads", "device": "device", "width": "width",
    "img_size": "img_size", "warmup": "warmup", "min_samples": "min_samples",
    "max_samples": "max_samples", "min_time_s": "min_time_s", "threads": "threads",
}


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="measure a sweep and store every point",
        description="Sweep model families over depth, batch, dtype, execution mode and "
        "workload; each point is committed to the database as soon as it finishes. "
        "Flags override the preset or --config file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="quick", help="quick (CPU, <60 s), paper (GPU), full")
    src.add_argument("--config", metavar="TOML", help="sweep file (keys: Sweep fields, "
                     "optional preset = NAME and a [depths_by_family] table)")
    p.add_argument("--family", dest="families", type=str_list, metavar="F[,F...]",
                   help="paraformer-loop, paraformer-fused, vit, vit-parallel, resnet")
    p.add_argument("--depth", dest="depths", type=int_list, metavar="D[,D...]")
    p.add_argument("--resnet-depth", dest="resnet_depths", type=int_list, metavar="D[,D...]",
                   help="ResNet layer counts (18, 34, 50, 101, 152, or 2n+2 / 3n+2)")
    p.add_argument("--batch", dest="batches", type=int_list, metavar="B[,B...]")
    p.add_argument("--dtype", dest="dtypes", type=str_list, metavar="T[,T...]",
                   help="float32, bfloat16, float16")
    p.add_argument("--mode", dest="modes", type=str_list, metavar="M[,M...]",
                   help="eager, graph (CUDA graph replay), compile (torch.compile)")
    p.add_argument("--workload", dest="workloads", type=str_list, metavar="W[,W...]",
                   help="infer, train (forward + backward + optimizer step)")
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--width", choices=("tiny", "paper"))
    p.add_argument("--img-size", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--min-samples", type=int)
    p.add_argument("--max-samples", type=int)
    p.add_argument("--min-time", dest="min_time_s", type=float, metavar="SECONDS")
    p.add_argument("--threads", type=int, help="torch CPU threads (recorded with the run)")
    add_db(p)
    p.add_argument("--resume", metavar="RUN_ID",
                   help="continue an interrupted run: its stored sweep, skipping finished points")
    p.add_argument("--profile", action="store_true",
                   help="also record a torch.profiler trace per point (separate pass)")
    p.add_argument("--no-telemetry", dest="telemetry", action="store_false",
                   help="skip the NVML energy/telemetry pass on GPU")
    p.add_argument("--trace-dir", default="traces", help="where --profile writes traces")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=main)


def _sweep(args):
    from ..config import preset, sweep_from_toml

    sweep = sweep_from_toml(args.config) if args.config else preset(args.preset)
    changes = {f: getattr(args, a) for a, f in _OVERRIDES.items() if getattr(args, a) is not None}
    if args.resnet_depths is not None:
        other = tuple((f, d) for f, d in sweep.depth_overrides if f != "resnet")
        changes["depth_overrides"] = other + (("resnet", args.resnet_depths),)
    families = changes.get("families", sweep.families)
    if "depths" in changes and args.resnet_depths is None and tuple(families) == ("resnet",):
        # ResNet depths are layer counts (18, 50, ...), normally given by --resnet-depth;
        # with ResNet alone, --depth means those too
        changes["depth_overrides"] = ()
    if changes:
        sweep = replace(sweep, name=f"{sweep.name}+flags", **changes)
    return sweep.validate()


def main(args) -> int:
    from ..config import sweep_from_dict
    from ..measure.passes import extra_passes
    from ..runner import run_sweep
    from ..store import Store

    store = Store(args.db, create=args.resume is None)
    if args.resume:
        sweep = sweep_from_dict(json.loads(store.run(args.resume)["sweep_json"]))
    else:
        sweep = _sweep(args)
    passes = extra_passes(sweep, profile=args.profile, telemetry=args.telemetry,
                          trace_dir=args.trace_dir, store=store)
    command = "python -m parabench " + shlex.join(sys.argv[1:])
    run_id = run_sweep(sweep, store, command=command, resume=args.resume, passes=passes,
                       progress=args.progress, log=lambda m: print(m, file=sys.stderr))
    print(run_id)
    return 0
