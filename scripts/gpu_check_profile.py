"""Gather the profiling layer's GPU evidence in one run (GPU time is scarce).

    python scripts/gpu_check_profile.py --out "$OUT"            # ~5 min on one H100
    python scripts/gpu_check_profile.py --out "$OUT" --small    # ~1 min

Writes into --out: nvml.json (what NVML sees), pytest.txt (the GPU and NVML tests of the
profiling layer), telemetry_direct.json (the real NVML sampler and energy window on one
model), profile.db + points.csv (a sweep Para-Former loop / fused / ViT at K = 1, 8, 48
with profile, telemetry and efficiency passes), traces/ (TensorBoard logdir; large
traces are left out with --no-traces) and summary.txt.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COLUMNS = ["key", "status", "reason", "median_ms", "kernels_per_forward", "gpu_busy_fraction",
           "cpu_dispatch_ms", "energy_j_per_image", "mean_power_w", "achieved_tflops",
           "peak_fraction", "throttled"]
EXTRA = ["launch_bound", "profiler_latency_ratio", "sampler_latency_ratio", "peak_tflops",
         "graph_launches_per_forward", "profile_note", "telemetry_missing", "throttle_reasons",
         "sm_clock_mhz_mean", "power_w_max", "energy_source", "energy_window_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--small", action="store_true", help="depths 1, 8 and batch 1 only")
    ap.add_argument("--no-traces", action="store_true", help="delete traces after summarising")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()

    import torch

    from parabench.measure import nvml

    summary = [f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}"]
    (out / "nvml.json").write_text(json.dumps(nvml.describe(), indent=2))
    summary.append(f"nvml: {nvml.describe()}")

    tests = ["tests/test_profile.py", "tests/test_telemetry.py", "tests/test_nvml.py",
             "tests/test_efficiency.py", "tests/test_tensorboard.py"]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", *tests], cwd=ROOT,
                       capture_output=True, text=True)
    (out / "pytest.txt").write_text(r.stdout + r.stderr)
    summary.append(f"pytest rc={r.returncode}: {r.stdout.strip().splitlines()[-1:]}")

    if torch.cuda.is_available():
        summary.append(_direct_telemetry(out))
        torch.cuda.empty_cache()
        summary.append(_sweep(out, small=args.small))
    if args.no_traces:
        shutil.rmtree(out / "traces", ignore_errors=True)
    summary.append(f"total {time.monotonic() - t_start:.0f} s")
    (out / "summary.txt").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    return 0


def _direct_telemetry(out: Path) -> str:
    """The real NVML present path on a bf16 ViT-S forward, outside the runner."""
    import torch

    from parabench.catalog import build
    from parabench.measure.telemetry import measure_telemetry
    from parabench.measure.timing import make_input, measure

    model = build("vit", 12, width="paper", img_size=224, device="cuda", dtype=torch.bfloat16)
    x = make_input(64, 224, "cuda", torch.bfloat16)

    def step():
        with torch.inference_mode():
            return model(x)

    lat = sorted(measure(step, device="cuda", warmup=10, min_time_s=0.5))
    res = measure_telemetry(step, batch=64, device="cuda", latency_ms=lat[len(lat) // 2],
                            timing={"warmup": 3, "min_samples": 20, "max_samples": 500,
                                    "min_time_s": 0.5})
    (out / "telemetry_direct.json").write_text(json.dumps(res, indent=2, default=str))
    keys = ("energy_j_per_image", "mean_power_w", "power_w_mean", "gpu_busy_pct_mean",
            "sm_clock_mhz_mean", "throttled", "throttle_reasons", "telemetry_samples",
            "sample_interval_ms", "sampler_latency_ratio", "telemetry_missing")
    return "direct telemetry (vit d12 b64 bf16): " + json.dumps(
        {k: res.get(k) for k in keys}, default=str)


def _sweep(out: Path, *, small: bool) -> str:
    from parabench.config import Sweep
    from parabench.measure.passes import extra_passes
    from parabench.runner import run_sweep
    from parabench.store import Store

    sweep = Sweep(
        families=("paraformer-loop", "paraformer-fused", "vit"),
        depths=(1, 8) if small else (1, 8, 48), batches=(1,) if small else (1, 256),
        dtypes=("bfloat16",), modes=("eager", "graph"), device="cuda", width="paper",
        img_size=224, warmup=10, min_samples=20, min_time_s=0.3, name="gpu-check-profile",
    )
    with Store(out / "profile.db") as store:
        passes = extra_passes(sweep, profile=True, telemetry=True, trace_dir=out / "traces",
                              store=store)
        run_id = run_sweep(sweep, store, command="scripts/gpu_check_profile.py", passes=passes,
                           progress=True, log=print)
        df = store.records_frame([run_id])
    for k in EXTRA:
        df[k] = df["extra"].map(lambda e, k=k: (e or {}).get(k))
    errors = df["extra"].map(lambda e: {k: v for k, v in (e or {}).items() if k.endswith("_error")})
    df["pass_errors"] = errors.map(lambda e: json.dumps(e) if e else None)
    cols = COLUMNS + EXTRA + ["pass_errors"]
    df[cols].to_csv(out / "points.csv", index=False)
    with_errors = int(df["pass_errors"].notna().sum())
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_columns", 20):
        table = df[["key", "median_ms", "kernels_per_forward", "gpu_busy_fraction",
                    "cpu_dispatch_ms", "energy_j_per_image", "peak_fraction",
                    "profiler_latency_ratio", "sampler_latency_ratio"]].to_string(index=False)
    return f"sweep {run_id}: {len(df)} points, {with_errors} with pass errors\n{table}"


if __name__ == "__main__":
    sys.exit(main())
