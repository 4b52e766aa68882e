"""Options shared by several subcommands: one definition each, so `--db`, `--run`,
`--out` and the sweep flags mean the same thing in every command."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import DEVICES, FAMILIES, WIDTHS
from ..families import LAYER_COUNTED
from ._values import int_list, str_list

__all__ = ["DefaultsHelp", "add_db", "add_out", "add_runs", "add_sweep_args", "add_turn_args",
           "sweep_flags_given", "sweep_from_args"]


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, except where there is nothing worth showing (None, an
    on/off flag) or its help already says what the default is."""

    def _get_help_string(self, action):
        text = action.help or ""
        flag = action.nargs == 0  # takes no value: store_true / store_false / store_const
        if flag or action.default is None or "default" in text:
            return text
        return super()._get_help_string(action)


def add_db(parser) -> None:
    parser.add_argument(
        "--db", type=Path, default=None,
        help="results database (default: $PARABENCH_DB or results/parabench.db)",
    )


def add_runs(parser, help_text="run ids to use; 'latest' is the newest (default: latest)") -> None:
    parser.add_argument("--run", dest="runs", action="append", metavar="ID", help=help_text)


def add_out(parser, help_text: str, *, default=None) -> None:
    parser.add_argument("--out", "-o", type=Path, default=default, metavar="PATH",
                        help=help_text)


#: flag dest -> Sweep field, for flags that override the preset / file
_SWEEP_FLAGS = ("families", "depths", "batches", "dtypes", "modes", "workloads", "device",
                "width", "img_size", "warmup", "warmup_s", "min_samples", "max_samples",
                "min_time_s", "threads", "schedule", "rounds", "processes", "turn_ms")


#: flag dest -> the flag as typed, where the two differ
_FLAG_NAMES = {"families": "--family", "depths": "--depth", "batches": "--batch",
               "dtypes": "--dtype", "modes": "--mode", "workloads": "--workload",
               "resnet_depths": "--resnet-depth", "min_time_s": "--min-time",
               "warmup_s": "--warmup-time", "turn_ms": "--turn-ms"}


def add_sweep_args(p, *, timing: bool = True) -> None:
    """What to measure: a preset or TOML file, overridden by flags (run, profile)."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="quick (CPU, <60 s; the default), paper (GPU), "
                     "fused-goals (the fused execution against loop and ViT, in turns), full")
    src.add_argument("--config", metavar="TOML", help="sweep file (keys: Sweep fields, "
                     "optional preset = NAME and a [depths_by_family] table)")
    p.add_argument("--family", dest="families", type=str_list, metavar="F[,F...]",
                   help=", ".join(FAMILIES) + " (python -m parabench list families)")
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
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--width", choices=tuple(WIDTHS))
    p.add_argument("--img-size", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads (recorded with the run)")
    if timing:
        p.add_argument("--warmup", type=int, help="least warm-up calls per point")
        p.add_argument("--warmup-time", dest="warmup_s", type=float, metavar="SECONDS",
                       help="least warm-up time per point (default: 0.2 s on CUDA, where "
                       "an idle GPU's clock must ramp up; none on CPU)")
        p.add_argument("--min-samples", type=int)
        p.add_argument("--max-samples", type=int)
        p.add_argument("--min-time", dest="min_time_s", type=float, metavar="SECONDS")
    else:
        p.set_defaults(warmup=None, warmup_s=None, min_samples=None, max_samples=None,
                       min_time_s=None)
    p.add_argument("--no-telemetry", dest="telemetry", action="store_false",
                   help="skip the NVML energy/telemetry pass on GPU (it runs at the sweep's "
                   "largest batch, about a second per point)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def add_turn_args(p, *, schedule: bool = False) -> None:
    """How arms take turns (an interleaved schedule, `compare --interleave`); with
    `schedule`, also --schedule itself (run)."""
    from ..config import SCHEDULES
    from ._values import positive_float, positive_int, worker_count

    if schedule:
        p.add_argument("--schedule", choices=SCHEDULES,
                       help="sweep: point after point (the default); interleaved: the "
                       "families are arms timed in turns, cell by cell, so a drift of the "
                       "machine's speed hits them alike (fused-goals preset)")
    p.add_argument("--rounds", type=positive_int,
                   help="turns per arm and point, per set of processes (default 30)")
    p.add_argument("--processes", type=worker_count,
                   help="sets of measuring processes (one per arm), one after the other: "
                   "each process has a bias of its own, and the interval is built over sets "
                   "(at least 2 for that; 1 gives an interval over rounds; default 5)")
    p.add_argument("--turn-ms", dest="turn_ms", type=positive_float, metavar="MS",
                   help="length of one turn in ms (calls per turn = turn / per-call time; "
                   "default 25)")
    if not schedule:
        p.set_defaults(schedule=None)


def sweep_flags_given(args) -> list[str]:
    """The flags on this command line that say what to measure (for refusing them where
    the sweep is fixed, as with --resume)."""
    dests = ("preset", "config", "resnet_depths") + _SWEEP_FLAGS
    return [_FLAG_NAMES.get(d, "--" + d.replace("_", "-")) for d in dests
            if getattr(args, d, None) is not None]


def sweep_from_args(args):
    """The validated Sweep that the preset/--config plus the override flags describe."""
    from dataclasses import replace

    from ..config import preset
    from ..sweep_file import sweep_from_toml

    if args.config is not None:
        sweep = sweep_from_toml(args.config)
    else:  # '' is a preset name typed wrong (an empty variable), not "the default"
        sweep = preset("quick" if args.preset is None else args.preset)
    changes = {f: getattr(args, f, None) for f in _SWEEP_FLAGS
               if getattr(args, f, None) is not None}
    if args.resnet_depths is not None:  # for the families whose depth is a layer count
        other = tuple((f, d) for f, d in sweep.depth_overrides if f not in LAYER_COUNTED)
        changes["depth_overrides"] = other + tuple((f, args.resnet_depths) for f in LAYER_COUNTED)
    families = changes.get("families", sweep.families)
    if "depths" in changes and args.resnet_depths is None and tuple(families) == LAYER_COUNTED:
        # ResNet depths are layer counts (18, 50, ...), normally given by --resnet-depth;
        # with ResNet alone, --depth means those too
        changes["depth_overrides"] = ()
    if changes:
        sweep = replace(sweep, name=f"{sweep.name}+flags", **changes)
    sweep, notes = sweep.validate().deduplicated()
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return sweep
