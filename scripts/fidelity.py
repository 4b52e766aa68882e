"""How honest is parabench's CPU timer? Measurements for the engine's closing note.

1. Fidelity: parabench's median against torch.utils.benchmark's blocked_autorange median
   on the same callable in one process (interleaved, so drift hits both alike).
2. Harness overhead per timed call (timing an empty callable).
3. Wall time of `python -m parabench run --preset quick`, start-up included.
4. Run-to-run spread: the same point in 5 separate processes, max/min of the medians.

Usage: python scripts/fidelity.py [--repeats 3] [--skip-quick] [--skip-spread]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = [  # family, depth, batch
    ("vit", 4, 1),
    ("paraformer-fused", 8, 8),
    ("resnet", 18, 1),
]


def fidelity(repeats: int) -> list[tuple]:
    from parabench.config import Point, preset
    from parabench.measure.prepare import prepared

    rows = []
    quick = preset("quick")  # tiny width, 32x32 images, as the quick sweep measures
    for fam, depth, batch in CONFIGS:
        with prepared(Point(fam, depth, batch, "float32", "eager", "infer"), quick) as prep:
            rows.append(_compare_timers(f"{fam} d{depth} b{batch}", prep.step, repeats))
    return rows


def _compare_timers(name: str, step, repeats: int) -> tuple:
    import torch
    from torch.utils.benchmark import Timer

    from parabench.measure.timing import measure

    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(statistics.median(measure(step, warmup=5, min_samples=20,
                                              max_samples=100000, min_time_s=1.0)))
        t = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
        theirs.append(t.blocked_autorange(min_run_time=1.0).median * 1e3)
    a, b = statistics.median(ours), statistics.median(theirs)
    return name, a, b, a / b


def overhead_ns() -> float:
    from parabench.measure.timing import measure

    samples = measure(lambda: None, warmup=100, min_samples=100000, max_samples=100000)
    return statistics.median(samples) * 1e6


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parabench", *args], capture_output=True,
                          text=True, check=True)


def quick_wall() -> float:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        cli("run", "--preset", "quick", "--db", str(Path(d) / "q.db"), "--no-progress")
        return time.perf_counter() - t


def spread(n: int = 5) -> tuple[list[float], float]:
    from parabench import load

    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "s.db"
        for _ in range(n):
            cli("run", "--family", "vit", "--depth", "4", "--min-time", "1", "--db", str(db),
                "--no-progress")
        med = list(load(db).median_ms)
    return med, max(med) / min(med)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-quick", action="store_true")
    ap.add_argument("--skip-spread", action="store_true")
    args = ap.parse_args()
    print(f"{'config':<26} {'parabench ms':>12} {'Timer ms':>10} {'ratio':>7}")
    for name, a, b, r in fidelity(args.repeats):
        print(f"{name:<26} {a:>12.4f} {b:>10.4f} {r:>7.3f}")
    print(f"harness overhead per timed call: {overhead_ns():.0f} ns")
    if not args.skip_quick:
        print(f"quick preset wall time (with start-up): {quick_wall():.1f} s")
    if not args.skip_spread:
        med, ratio = spread()
        print(f"run-to-run medians (5 processes, vit d4 b1): "
              f"{', '.join(f'{m:.4f}' for m in med)} ms; max/min {ratio:.3f}")


if __name__ == "__main__":
    main()
