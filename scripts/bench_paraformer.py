#!/usr/bin/env python
"""Latency of Para-Former's two executions (loop vs fused) as the number of branches K grows.

CPU (default when no GPU): float32, eager, ``torch.utils.benchmark.Timer.blocked_autorange``
medians, K in {1, 2, 4, 8, 16}, batch 1 and 8, the authors' width (D 192) and ViT-S
width (D 384), branch_depth 1, image 224.

CUDA (auto-detected, or ``--device cuda``): bfloat16, eager and CUDA-graph replay, batch
1, 32 and 256, K up to 48, beside timm's serial ViT of the same width with depth K
(``vit_small_patch16_224`` with overrides). CUDA graphs are captured after a warm-up on
a side stream and replayed in rounds timed with CUDA events (one synchronisation per
round); the median round is reported.

This is a quick instrument for the model package, not a test; the project's full,
recorded measurements are made by ``parabench``.

Examples::

    PYTHONPATH=models python scripts/bench_paraformer.py --quick
    PYTHONPATH=models python scripts/bench_paraformer.py --out /tmp/pf.csv
    PYTHONPATH=models python scripts/bench_paraformer.py --device cuda --modes graph
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

try:
    from paraformer import ParaFormer
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    from paraformer import ParaFormer

from parabench.config import WIDTHS  # noqa: E402  (the project's one table of widths)

CPU_KS = (1, 2, 4, 8, 16)
CPU_BATCHES = (1, 8)
CUDA_KS = (1, 2, 4, 8, 12, 24, 48)
CUDA_BATCHES = (1, 32, 256)


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _strs(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--ks", type=_ints, help="comma list of K (branches = serial depth)")
    p.add_argument("--batches", type=_ints, help="comma list of batch sizes")
    p.add_argument(
        "--widths",
        type=_strs,
        help=f"comma list from {sorted(WIDTHS)} (default: authors,paper on CPU, paper on CUDA)",
    )
    p.add_argument(
        "--execs",
        type=_strs,
        help="comma list from loop,fused,serial (default CPU: loop,fused; CUDA: all three)",
    )
    p.add_argument(
        "--modes",
        type=_strs,
        default=None,
        help="CUDA only: comma list from eager,graph (default both)",
    )
    p.add_argument("--branch-depth", type=int, default=1, help="blocks per branch (default 1)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument(
        "--dtype", choices=("float32", "bfloat16", "float16"), help="default: fp32 CPU, bf16 CUDA"
    )
    p.add_argument("--min-run-time", type=float, help="seconds per measurement (blocked_autorange)")
    p.add_argument("--threads", type=int, help="CPU intra-op threads (default: torch's)")
    p.add_argument(
        "--serial-no-qkv-bias",
        action="store_true",
        help="build the timm serial ViT without qkv bias (exact parameter parity)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="repeat the whole sweep N times and keep, per point, the smallest median "
        "(robust to other load on a shared machine; default 1)",
    )
    p.add_argument("--quick", action="store_true", help="a short run: fewer K, batches, widths")
    p.add_argument("--out", type=Path, help="write rows to a .csv or .json file")
    return p.parse_args(argv)


# -- models ------------------------------------------------------------------------------------
def build(exec_: str, width: str, K: int, args, device, dtype) -> torch.nn.Module:
    w = WIDTHS[width]
    D, H, dh, M = w.dim, w.heads, w.head_dim, w.mlp_dim
    if exec_ == "serial":
        import timm

        model = timm.create_model(
            "vit_small_patch16_224",
            pretrained=False,
            depth=K * args.branch_depth,
            embed_dim=D,
            num_heads=H,
            mlp_ratio=M / D,
            img_size=args.img_size,
            num_classes=1000,
            qkv_bias=not args.serial_no_qkv_bias,
        )
    else:
        model = ParaFormer(
            img_size=args.img_size,
            embed_dim=D,
            num_heads=H,
            head_dim=dh,
            mlp_dim=M,
            num_branches=K,
            branch_depth=args.branch_depth,
            execution=exec_,
        )
    return model.to(device=device, dtype=dtype).eval()


# -- timers ------------------------------------------------------------------------------------
def time_eager(model, x, min_run_time: float, threads: int) -> float:
    """Median seconds per forward (Timer synchronises CUDA itself)."""

    def step():
        with torch.inference_mode():
            model(x)

    step()
    step()  # warm-up: allocator, kernels, lazy init
    t = Timer(stmt="step()", globals={"step": step}, num_threads=threads)
    return t.blocked_autorange(min_run_time=min_run_time).median


def time_cuda_graph(model, x, min_run_time: float, rounds: int = 7) -> float:
    """Median seconds per CUDA-graph replay, rounds of replays timed with CUDA events."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad():
        with torch.cuda.stream(side):
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(x)
    torch.cuda.synchronize()

    def round_(n: int) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            graph.replay()
        end.record()
        end.synchronize()  # the one synchronisation of the round
        return start.elapsed_time(end) / 1e3 / n

    per = round_(10)  # warm-up and calibration
    n = max(10, min(10_000, int(min_run_time / rounds / max(per, 1e-7))))
    return statistics.median(round_(n) for _ in range(rounds))


# -- the sweep ---------------------------------------------------------------------------------
def run(args) -> list[dict]:
    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    cuda = device == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    ks = args.ks or ([1, 4, 16] if args.quick else list(CUDA_KS if cuda else CPU_KS))
    if cuda and args.quick and not args.ks:
        ks = [1, 8, 48]
    batches = args.batches or ([1] if args.quick else list(CUDA_BATCHES if cuda else CPU_BATCHES))
    if cuda and args.quick and not args.batches:
        batches = [1, 256]
    widths = args.widths or (["paper"] if cuda or args.quick else ["authors", "paper"])
    if args.quick and not cuda and not args.widths:
        widths = ["authors"]
    execs = args.execs or (["loop", "fused", "serial"] if cuda else ["loop", "fused"])
    modes = (args.modes or ["eager", "graph"]) if cuda else ["eager"]
    dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    min_run_time = args.min_run_time or (0.1 if args.quick else (0.5 if cuda else 0.3))
    for name, values, allowed in (
        ("--widths", widths, WIDTHS),
        ("--execs", execs, ("loop", "fused", "serial")),
        ("--modes", modes, ("eager", "graph")),
    ):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise SystemExit(f"{name}: unknown {bad}, choose from {sorted(allowed)}")

    what = "graph replay" if "graph" in modes else "eager"
    print(
        f"# device={device} ({torch.cuda.get_device_name() if cuda else f'{threads} threads'}) "
        f"dtype={str(dtype).split('.')[-1]} img={args.img_size} branch_depth={args.branch_depth} "
        f"min_run_time={min_run_time}s repeats={args.repeats} modes={modes} ({what})",
        flush=True,
    )
    points = [
        (mode, width, batch, K, exec_)
        for mode in modes
        for width in widths
        for batch in batches
        for K in ks
        for exec_ in execs
    ]
    times: dict[tuple, list[float]] = {pt: [] for pt in points}
    inputs: dict[int, torch.Tensor] = {}
    for rep in range(max(1, args.repeats)):
        for pt in points:
            mode, width, batch, K, exec_ = pt
            if batch not in inputs:
                inputs[batch] = torch.randn(
                    batch, 3, args.img_size, args.img_size, device=device, dtype=dtype
                )
            x = inputs[batch]
            model = None
            try:
                model = build(exec_, width, K, args, device, dtype)
                if mode == "graph":
                    sec = time_cuda_graph(model, x, min_run_time)
                else:
                    sec = time_eager(model, x, min_run_time, threads)
            except torch.OutOfMemoryError:
                sec = math.nan
            finally:
                del model
                if cuda:
                    torch.cuda.empty_cache()
            times[pt].append(sec)
            print(
                f"  [{rep + 1}/{args.repeats}] {mode:5s} {width:5s} b={batch:<3d} K={K:<3d} "
                f"{exec_:6s} {sec * 1e3:10.3f} ms",
                file=sys.stderr,
                flush=True,
            )
    rows = []
    for pt in points:
        mode, width, batch, K, exec_ = pt
        finite = [t for t in times[pt] if math.isfinite(t)]
        rows.append(
            {
                "device": device,
                "dtype": str(dtype).split(".")[-1],
                "mode": mode,
                "width": width,
                "embed_dim": WIDTHS[width].dim,
                "batch": batch,
                "K": K,
                "branch_depth": args.branch_depth,
                "exec": exec_,
                "ms": min(finite) * 1e3 if finite else math.nan,
                "repeats": len(times[pt]),
                "ms_each": " ".join(f"{t * 1e3:.4f}" for t in times[pt]),
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    """One line per (mode, width, batch, K): times, fused/loop, fused/serial, ratios to K=1."""
    ms = {(r["mode"], r["width"], r["batch"], r["K"], r["exec"]): r["ms"] for r in rows}
    execs = [e for e in ("loop", "fused", "serial") if any(r["exec"] == e for r in rows)]
    keys = sorted(
        {(r["mode"], r["width"], r["batch"], r["K"]) for r in rows},
        key=lambda k: (k[0], list(WIDTHS).index(k[1]), k[2], k[3]),
    )
    base_k = {}
    for mode, width, batch, K in keys:
        base_k.setdefault((mode, width, batch), K)
    head = ["mode", "width", "batch", "K"] + [f"{e} ms" for e in execs]
    if {"loop", "fused"} <= set(execs):
        head.append("fused/loop")
    if {"serial", "fused"} <= set(execs):
        head.append("fused/serial")
    head += [f"{e} K/K1" for e in execs]

    def get(mode, width, batch, K, e):
        return ms.get((mode, width, batch, K, e), math.nan)

    lines = []
    for mode, width, batch, K in keys:
        k0 = base_k[(mode, width, batch)]
        vals = {e: get(mode, width, batch, K, e) for e in execs}
        cells = [mode, f"{width}(D{WIDTHS[width].dim})", str(batch), str(K)]
        cells += [f"{vals[e]:.3f}" for e in execs]
        if "fused/loop" in head:
            cells.append(f"{vals['fused'] / vals['loop']:.2f}")
        if "fused/serial" in head:
            cells.append(f"{vals['fused'] / vals['serial']:.2f}")
        cells += [f"{vals[e] / get(mode, width, batch, k0, e):.2f}" for e in execs]
        lines.append(cells)
    widths_ = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]

    def fmt(cells):
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths_, strict=True)) + " |"

    out = [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths_) + "|"]
    out += [fmt(c) for c in lines]
    return "\n".join(out)


def write(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=1))
    else:
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = run(args)
    print(table(rows))
    if args.out:
        write(rows, args.out)
        print(f"# wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
