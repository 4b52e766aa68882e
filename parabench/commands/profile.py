"""`parabench profile`: measure a sweep with torch.profiler traces and show why it is fast
or slow (kernels or ops per forward, GPU busy fraction, CPU dispatch time)."""
from __future__ import annotations

import math
import os
import shlex
import sys
from pathlib import Path

from ..outputs import prepare_output_dir
from ._options import DefaultsHelp, add_db, add_sweep_args, sweep_from_args
from ._table import print_table


def register(sub) -> None:
    p = sub.add_parser(
        "profile", help="measure points with torch.profiler traces (TensorBoard, Perfetto)",
        description="Measure a sweep (default: the quick CPU preset) like `run`, plus a "
        "torch.profiler pass per point. Traces go to TRACE_DIR/<run>/<point>/ in the layout "
        "`tensorboard --logdir TRACE_DIR` (torch-tb-profiler) opens; trace.chrome.json "
        "beside each opens in ui.perfetto.dev. The summary (kernels or ops per forward, GPU "
        "busy fraction, CPU dispatch time, top operators) is stored with each point.",
        formatter_class=DefaultsHelp,
    )
    add_sweep_args(p, timing=False)
    p.add_argument("--trace-dir", default="traces", type=Path, help="where traces are written")
    add_db(p)
    p.set_defaults(func=main)


def _num(v):
    """A stored number, or None for SQL NULL / pandas NaN."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _fmt(v, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    v = _num(v)
    return "-" if v is None else format(v * scale, spec) + suffix


def table_rows(df) -> list[tuple]:
    """One row per point: the profile summary next to the latency."""
    rows = []
    for r in df.itertuples():
        extra = r.extra or {}
        if r.status != "ok":
            rows.append((r.key, r.status, (r.reason or "")[:60], "", "", "", "", "", ""))
            continue
        busy = _fmt(r.gpu_busy_fraction, ".0f", 100, "%")
        if extra.get("launch_bound"):
            busy += " launch-bound"
        rows.append((
            r.key, _fmt(r.median_ms, ".3f"), _fmt(r.kernels_per_forward, ".0f"),
            extra.get("profile_unit", "-"), busy, _fmt(r.cpu_dispatch_ms, ".3f"),
            _fmt(extra.get("profiler_latency_ratio"), ".2f"), _fmt(r.achieved_tflops, ".3g"),
            _fmt(r.peak_fraction, ".2f", 100),
        ))
    return rows


TABLE_HEADER = ("point", "median ms", "per fwd", "unit", "GPU busy", "dispatch ms",
                "prof/lat", "TFLOP/s", "% peak")


def _quiet_kineto_without_gpu() -> None:
    """A CUDA build of torch on a machine without a driver makes kineto log a bogus
    'gpuGetDeviceCount failed' ERROR on every trace; keep kineto's log level as the
    user set it, else silence it, but only where there is no GPU to report on."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("KINETO_LOG_LEVEL", "5")


def main(args) -> int:
    from ..measure.passes import extra_passes
    from ..runner import preflight, run_sweep
    from ..store import Store

    sweep = preflight(sweep_from_args(args))
    prepare_output_dir(args.trace_dir, "--trace-dir")  # before an hour of measuring
    _quiet_kineto_without_gpu()
    store = Store(args.db)
    passes = extra_passes(sweep, profile=True, telemetry=args.telemetry,
                          trace_dir=args.trace_dir, store=store)
    command = "python -m parabench " + shlex.join(sys.argv[1:])
    run_id = run_sweep(sweep, store, command=command, passes=passes, progress=args.progress,
                       log=lambda m: print(m, file=sys.stderr))
    df = store.records_frame([run_id])
    print_table(TABLE_HEADER, table_rows(df), right=TABLE_HEADER[1:3] + TABLE_HEADER[5:])
    errors = {k: v for e in df["extra"] for k, v in (e or {}).items() if k.endswith("_error")}
    for k, v in errors.items():
        print(f"warning: {k}: {v}", file=sys.stderr)
    print(f"\nrun {run_id}; traces in {args.trace_dir / run_id}")
    print(f"view in TensorBoard:  tensorboard --logdir {shlex.quote(str(args.trace_dir))}")
    print("or open any <point>/trace.chrome.json in https://ui.perfetto.dev")
    return 0
