#!/usr/bin/env python
"""Para-Former's executions against serial models as K grows, measured interleaved.

For each (mode, width, batch, K) every execution is built once and then timed in
rounds, A B C D E A B C D E ..., the order rotating each round, so that a machine whose
speed drifts (a shared CPU, a GPU warming up) slows every execution alike. Each round
gives every execution the same number of calls; the ratios are taken round by round
and reported as median and range. Every row records the 1-minute load average before
and after its group's rounds, the CPU seconds other processes used meanwhile, and
`busy` when the load exceeded the threads + 0.5 (parabench.measure.load): such figures
are not the machine's, and the table marks them. Fused rows record their branch group
(fused_group) and the rule's inputs. Executions:

  loop        Para-Former, branch after branch (the authors' single-device algorithm)
  fused       Para-Former, branches in groups sized to the cache (paraformer.groups: all
              of them at once on a GPU or where they fit; same weights as loop)
  fused-all   fused with every branch in one group whatever the cache (the plan before
              issue 24; shows what the grouping buys)
  fused-2pass fused with fc1's bias and GELU as two eager passes instead of the one-pass
              kernel (CUDA only: on CPU the kernel never runs, so it equals fused)
  least-work  fused, computing only what the CLS head reads (same weights; fewer FLOPs)
  twin        Para-Former's own code with one branch of depth K*branch_depth: serial,
              same modules and kernels (isolates parallelism from framework overhead)
  vit         timm's serial ViT of depth K*branch_depth at the same width

CPU: float32, eager, perf_counter per call. CUDA: bf16, eager (CUDA events, one
synchronisation per round) and CUDA-graph replay. Every row is appended to --out (CSV or
JSON Lines) as soon as its group is measured; a failing execution becomes an `error` (or
`oom`) row and the sweep goes on.

Examples::

    python scripts/bench_paraformer.py --quick
    python scripts/bench_paraformer.py --widths paper --ks 1,4,12,24 --batches 1,8 \\
        --threads 2 --rounds 7 --out /tmp/pf.csv
    python scripts/bench_paraformer.py --traffic --ks 1,12,48 --batches 1,8,256
    python scripts/bench_paraformer.py --device cuda --modes graph --ks 1,8,48
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import torch

try:
    import paraformer
except ImportError:  # a checkout without the package installed (a bare GPU image)
    _ROOT = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(_ROOT), str(_ROOT / "models")]
    import paraformer

import paraformer.epilogue  # noqa: E402  (its USE_KERNEL switch is fused-2pass)
import paraformer.groups  # noqa: E402  (the branch-group rule's cache size, for the header)

from parabench.config import WIDTHS  # noqa: E402  (the project's one table of widths)
from parabench.measure.load import LoadWindow, load_text  # noqa: E402
from parabench.measure.timing import warm_up, warmup_seconds  # noqa: E402
from parabench.workloads import capture_graph  # noqa: E402  (the one CUDA-graph capture)

EXECS = ("loop", "fused", "fused-all", "fused-2pass", "least-work", "twin", "vit")
PARA = ("loop", "fused", "fused-all", "fused-2pass", "least-work")  # one shared ParaFormer
PLAN = ("fused_group", "fused_branch_bytes", "fused_budget_bytes", "fused_group_rule")
LOAD = ("load_1m_before", "load_1m_after", "other_cpu_s", "busy")
#: Ratios reported per row: this execution's latency over the reference's, per round.
REFERENCES = ("loop", "fused-all", "fused-2pass", "twin", "vit")
FIELDS = [
    "device", "dtype", "mode", "width", "embed_dim", "batch", "K", "branch_depth", "layers",
    "critical_path", "exec", "status", "error", "ms", "p10_ms", "p90_ms", "calls", "rounds",
    "ms_rounds", "mflop_per_image", "max_rel_err_vs_loop", *PLAN, *LOAD,
] + [f"ratio_{r}_{s}" for r in REFERENCES for s in ("median", "min", "max")]


def _ints(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of integers, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return out


def _choices(allowed):
    def parse(text: str) -> list[str]:
        out = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in out if t not in allowed]
        if bad or not out:
            raise argparse.ArgumentTypeError(
                f"unknown {bad or text!r}; choose from {', '.join(allowed)}")
        return out
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--ks", type=_ints, help="comma list of K (branches; serial depth K*branch_depth)")
    p.add_argument("--batches", type=_ints, help="comma list of batch sizes")
    p.add_argument("--widths", type=_choices(tuple(WIDTHS)),
                   help=f"comma list from {', '.join(WIDTHS)} (default: paper)")
    p.add_argument("--execs", type=_choices(EXECS), help=f"comma list from {', '.join(EXECS)} "
                   "(default: all)")
    p.add_argument("--modes", type=_choices(("eager", "graph")),
                   help="CUDA only: eager, graph (default both)")
    p.add_argument("--branch-depth", type=int, default=1, help="blocks per branch (default 1)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="default: float32 on CPU, bfloat16 on CUDA")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--round-time", type=float,
                   help="seconds per execution per round (default 0.3 CPU, 0.1 CUDA)")
    p.add_argument("--threads", type=int, help="CPU intra-op threads (default: torch's)")
    p.add_argument("--vit-no-qkv-bias", action="store_true",
                   help="timm's ViT without qkv bias (exact parameter parity with Para-Former)")
    p.add_argument("--quick", action="store_true", help="a short run: K 1,4, batch 1, authors width")
    p.add_argument("--traffic", action="store_true",
                   help="print the analytic kernels and bytes per fused level (before and "
                   "after the current plan) for the chosen sizes, and exit")
    p.add_argument("--out", type=Path, help="append rows to a .csv or .jsonl file as measured")
    args = p.parse_args(argv)
    if args.out and args.out.suffix not in (".csv", ".jsonl"):
        p.error(f"--out {args.out}: use a .csv or .jsonl file (rows are appended as measured)")
    if args.rounds < 2:
        p.error("--rounds must be at least 2 (ratios are taken round by round)")
    if args.branch_depth < 1:
        p.error(f"--branch-depth must be >= 1, got {args.branch_depth}")
    return args


# -- models -----------------------------------------------------------------------------------
def build(exec_: str, width: str, K: int, args, device, dtype) -> torch.nn.Module:
    """One model; loop, fused and least-work are one ParaFormer switched between executions."""
    w = WIDTHS[width]
    depth = K * args.branch_depth
    if exec_ == "vit":
        import timm

        model = timm.create_model(
            "vit_small_patch16_224", pretrained=False, depth=depth, embed_dim=w.dim,
            num_heads=w.heads, mlp_ratio=w.mlp_dim / w.dim, img_size=args.img_size,
            patch_size=w.patch, num_classes=w.num_classes, qkv_bias=not args.vit_no_qkv_bias,
        )
    else:
        serial = exec_ == "twin"
        model = paraformer.ParaFormer(
            img_size=args.img_size, patch_size=w.patch, num_classes=w.num_classes,
            embed_dim=w.dim, num_heads=w.heads, head_dim=w.head_dim, mlp_dim=w.mlp_dim,
            num_branches=1 if serial else K, branch_depth=depth if serial else args.branch_depth,
            drop_rate=0.0, emb_drop_rate=0.0, execution="fused",
        )
    return model.to(device=device, dtype=dtype).eval()


def flops_per_image(exec_: str, width: str, K: int, args) -> float:
    w = WIDTHS[width]
    kw = dict(img_size=args.img_size, patch_size=w.patch, num_classes=w.num_classes,
              embed_dim=w.dim, num_heads=w.heads, head_dim=w.head_dim, mlp_dim=w.mlp_dim)
    if exec_ == "twin":
        kw.update(num_branches=1, branch_depth=K * args.branch_depth)
    else:  # the ViT's qkv bias is not a matmul: the same count
        kw.update(num_branches=K, branch_depth=args.branch_depth,
                  execution="least-work" if exec_ == "least-work" else "fused")
    return paraformer.paraformer_flops(**kw) / 1e6


# -- timers: each returns a function `one_round(calls) -> [seconds per call]` -------------------
def eager_timer(fn, cuda: bool):
    if not cuda:
        def one_round(calls: int) -> list[float]:
            out = []
            for _ in range(calls):
                t0 = time.perf_counter_ns()
                fn()
                out.append((time.perf_counter_ns() - t0) / 1e9)
            return out
        return one_round

    def one_round(calls: int) -> list[float]:
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(calls + 1)]
        ev[0].record()
        for i in range(calls):
            fn()
            ev[i + 1].record()
        ev[-1].synchronize()  # the one synchronisation of the round
        return [ev[i].elapsed_time(ev[i + 1]) / 1e3 for i in range(calls)]
    return one_round


def graph_timer(fn):
    """CUDA graph of `fn` (parabench's capture, as `graph` points use it); replays timed."""
    graph, _ = capture_graph(fn)
    torch.cuda.synchronize()
    return eager_timer(graph.replay, cuda=True)


# -- the sweep --------------------------------------------------------------------------------
def switch(model, e: str):
    """Set the shared ParaFormer to execution ``e`` of PARA; returns it."""
    model.set_execution(e if e in ("loop", "least-work") else "fused")
    model.branch_group = model.num_branches if e == "fused-all" else None
    paraformer.epilogue.USE_KERNEL = e != "fused-2pass"
    return model


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def measure_group(mode, width, batch, K, execs, args, device, dtype, cuda) -> list[dict]:
    """Build every execution for one (mode, width, batch, K), time them interleaved."""
    base = {"device": device, "dtype": str(dtype).split(".")[-1], "mode": mode, "width": width,
            "embed_dim": WIDTHS[width].dim, "batch": batch, "K": K,
            "branch_depth": args.branch_depth, "rounds": 0}
    rows = {e: {**base, "exec": e, "status": "ok", "error": ""} for e in execs}
    for e in execs:
        serial = e in ("twin", "vit")
        rows[e]["layers"] = K * args.branch_depth
        rows[e]["critical_path"] = K * args.branch_depth if serial else args.branch_depth
        rows[e]["mflop_per_image"] = round(flops_per_image(e, width, K, args), 1)
    x = torch.randn(batch, 3, args.img_size, args.img_size, device=device, dtype=dtype)
    para, timers, outs = None, {}, {}
    for e in execs:
        try:
            if e in PARA:
                para = para or build("fused", width, K, args, device, dtype)
                model = para

                def fn(model=model, e=e):
                    # the executions share weights; switching is free (a CUDA graph keeps
                    # the choice it was captured with)
                    switch(model, e)
                    return model(x)
                if e != "loop":
                    rows[e].update(switch(model, e).branch_plan(batch))
            else:
                model = build(e, width, K, args, device, dtype)

                def fn(model=model):
                    return model(x)
            with torch.inference_mode():
                outs[e] = fn()
                timers[e] = graph_timer(fn) if mode == "graph" else eager_timer(fn, cuda)
                # the runner's warm-up: on CUDA at least 0.2 s, so the clock has ramped
                warm_up(lambda e=e: timers[e](1), device, 2, warmup_seconds(device, None))
                warm = timers[e](2)
            rows[e]["_per_call"] = statistics.median(warm)
        except Exception as exc:  # noqa: BLE001  (any failure becomes a row; the sweep goes on)
            oom = isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)
            rows[e].update(status="oom" if oom else "error",
                           error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            timers.pop(e, None)
            if cuda:
                torch.cuda.empty_cache()
    paraformer.epilogue.USE_KERNEL = True
    for e in PARA[1:]:
        if e in outs and "loop" in outs:
            rows[e]["max_rel_err_vs_loop"] = f"{_rel_err(outs[e], outs['loop']):.2e}"
    live = [e for e in execs if e in timers]
    round_time = args.round_time or (0.1 if cuda else 0.3)
    calls = {e: max(1, min(1000, round(round_time / max(rows[e]["_per_call"], 1e-6))))
             for e in live}
    samples = {e: [] for e in live}
    per_round = {e: [] for e in live}
    with LoadWindow(torch.get_num_threads()) as window:  # the conditions of these rounds
        for r in range(args.rounds):
            order = live[r % len(live):] + live[: r % len(live)] if live else []
            for e in order:
                try:
                    with torch.inference_mode():
                        got = timers[e](calls[e])
                except Exception as exc:  # noqa: BLE001
                    rows[e].update(status="error", error=f"{type(exc).__name__}: {exc}"[:200])
                    live.remove(e)
                    continue
                samples[e] += got
                per_round[e].append(statistics.median(got))
            print(f"    round {r + 1}/{args.rounds}: " + "  ".join(
                f"{e} {per_round[e][-1] * 1e3:.1f}" for e in live if per_round[e]),
                file=sys.stderr, flush=True)
    cond = window.result()
    for row in rows.values():
        row.update({k: cond[k] for k in LOAD})
    for e in live:
        s = sorted(samples[e])
        rows[e].update(ms=round(statistics.median(s) * 1e3, 4),
                       p10_ms=round(s[int(0.1 * (len(s) - 1))] * 1e3, 4),
                       p90_ms=round(s[int(0.9 * (len(s) - 1))] * 1e3, 4), calls=len(s),
                       rounds=len(per_round[e]),
                       ms_rounds=" ".join(f"{t * 1e3:.3f}" for t in per_round[e]))
        for ref in REFERENCES:
            if ref == e or ref not in live:
                continue
            ratios = [a / b for a, b in zip(per_round[e], per_round[ref], strict=False)]
            if ratios:
                rows[e].update({f"ratio_{ref}_median": round(statistics.median(ratios), 4),
                                f"ratio_{ref}_min": round(min(ratios), 4),
                                f"ratio_{ref}_max": round(max(ratios), 4)})
    for row in rows.values():
        row.pop("_per_call", None)
    return [rows[e] for e in execs]


class RowWriter:
    """Appends rows to a CSV or JSON Lines file and flushes each one."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        if not new and path.suffix == ".csv":
            with path.open(newline="") as f:
                if next(csv.reader(f), None) != FIELDS:
                    raise SystemExit(f"--out {path}: its columns are not this version's; "
                                     "write to a new file")
        self.file = path.open("a", newline="")
        if path.suffix == ".csv":
            self.csv = csv.DictWriter(self.file, fieldnames=FIELDS, restval="")
            if new:
                self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.path is None:
            return
        if self.path.suffix == ".csv":
            self.csv.writerow(row)
        else:
            self.file.write(json.dumps(row) + "\n")
        self.file.flush()


def run(args) -> list[dict]:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" \
        else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    cuda = device == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    ks = args.ks or ([1, 4] if args.quick else ([1, 8, 48] if cuda else [1, 4, 12, 24]))
    batches = args.batches or ([1] if args.quick else ([1, 32, 256] if cuda else [1, 8]))
    widths = args.widths or (["authors"] if args.quick else ["paper"])
    execs = args.execs or [e for e in EXECS if cuda or e != "fused-2pass"]
    modes = (args.modes or ["eager", "graph"]) if cuda else ["eager"]
    dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    if args.traffic:
        print(traffic_table(ks, batches, widths, args))
        return []
    g = paraformer.groups
    print(f"# device={device} ({torch.cuda.get_device_name() if cuda else ''}"
          f"{torch.get_num_threads()} threads) dtype={str(dtype).split('.')[-1]} "
          f"img={args.img_size} branch_depth={args.branch_depth} rounds={args.rounds}\n"
          f"# branch groups: G = clamp(budget // (B*N*max(M, 3*H*dh)*bytes), 1, K), budget "
          + (f"{g.CUDA_FRACTION} of device memory" if cuda else
             f"{g.CACHE_FRACTION} x last-level cache {g.CACHE_BYTES / 2**20:.1f} MiB "
             f"({g.CACHE_SOURCE})"), flush=True)
    writer, rows = RowWriter(args.out), []
    groups = [(m, w, b, k) for m in modes for w in widths for b in batches for k in ks]
    with LoadWindow(torch.get_num_threads()) as whole:
        for i, (mode, width, batch, K) in enumerate(groups, 1):
            print(f"  [{i}/{len(groups)}] {mode} {width} batch {batch} K {K}",
                  file=sys.stderr, flush=True)
            for row in measure_group(mode, width, batch, K, execs, args, device, dtype, cuda):
                writer.write(row)
                rows.append(row)
    print(f"# over the whole run: {load_text(whole.result())}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """One line per (mode, width, batch, K, exec): median ms and per-round ratios."""
    refs = [ref for ref in REFERENCES if any(f"ratio_{ref}_median" in r for r in rows)]
    head = ["mode", "width", "batch", "K", "exec", "G", "status", "ms", "MFLOP/img"] + [
        f"/ {r}" for r in refs] + ["conditions"]
    lines = []
    for r in rows:
        cells = [r["mode"], r["width"], str(r["batch"]), str(r["K"]), r["exec"],
                 str(r.get("fused_group", "-")), r["status"],
                 f"{r['ms']:.2f}" if "ms" in r else "-", f"{r['mflop_per_image']:.0f}"]
        for ref in refs:
            med = r.get(f"ratio_{ref}_median")
            cells.append("-" if med is None else
                         f"{med:.2f} [{r[f'ratio_{ref}_min']:.2f}-{r[f'ratio_{ref}_max']:.2f}]")
        cells.append(load_text(r) if "busy" in r else "-")
        lines.append(cells)
    widths_ = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h)
               for i, h in enumerate(head)]

    def fmt(cells):
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths_, strict=True)) + " |"

    return "\n".join([fmt(head), "|" + "|".join("-" * (w + 2) for w in widths_) + "|"]
                     + [fmt(c) for c in lines])


def traffic_table(ks, batches, widths, args) -> str:
    """Analytic kernels and MiB per fused level: before the fused plan, after it (CPU),
    and on CUDA, where fc1's bias and GELU are one pass (paraformer.level_traffic)."""
    e = 2 if (args.dtype or "float32") != "float32" else 4
    names = ("before", "after", "cuda")
    out = ["| width | batch | K | level | kernels " + " / ".join(names) + " | MiB "
           + " / ".join(names) + " | after/before | cuda/before |",
           "|---|---|---|---|---|---|---|---|"]
    for width in widths:
        w = WIDTHS[width]
        tokens = (args.img_size // w.patch) ** 2 + 1
        for b in batches:
            for k in ks:
                for shared in (True, False):
                    plans = [paraformer.level_traffic(p, k, b, tokens, w.dim, w.heads, w.head_dim,
                                                      w.mlp_dim, shared=shared,
                                                      bytes_per_element=e)
                             for p in names]
                    mib = [sum(r + wr for _, r, wr in p) / 2**20 for p in plans]
                    out.append(f"| {width} | {b} | {k} | {'first (shared)' if shared else 'deeper'}"
                               f" | {' / '.join(str(len(p)) for p in plans)}"
                               f" | {' / '.join(f'{m:.1f}' for m in mib)}"
                               f" | {mib[1] / mib[0]:.3f} | {mib[2] / mib[0]:.3f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        rows = run(args)
    except KeyboardInterrupt:
        print("# interrupted: rows measured so far are in --out", file=sys.stderr)
        return 130
    if rows:
        print(table(rows))
        bad = [r for r in rows if r["status"] != "ok"]
        if args.out:
            print(f"# appended {len(rows)} rows to {args.out}")
        if bad:
            print(f"# {len(bad)} rows failed: " + "; ".join(
                f"{r['exec']} K{r['K']} b{r['batch']}: {r['error']}" for r in bad))
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
