#!/usr/bin/env python
"""Page faults and system time per forward, each family alone in a fresh process.

A CPU forward that frees large tensors hands them back to glibc, which may return the
pages to the OS; the next call then faults them in again (the kernel zeroes each page).
How often depends on what the process allocated before, so each family runs here in a
process of its own, as in a sweep. Not a speed comparison (the families run one after
another, not in turns): `python -m parabench run --preset fused-goals` is that.

    python scripts/page_faults.py --families paraformer-loop,paraformer-fused,vit \\
        --depth 4 --batch 8 --width paper --img-size 224 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT), str(_ROOT / "models")]  # this checkout's parabench, installed or not

from parabench import families  # noqa: E402  (light: no torch until a model is built)
from parabench.commands._values import positive_int, str_list  # noqa: E402
from parabench.config import WIDTHS  # noqa: E402

# run in the child: build, warm up, then time `calls` forwards with getrusage around them
_CHILD = """
import json, resource, sys, time
sys.path[:0] = {paths!r}
import torch
from parabench import catalog
torch.set_num_threads({threads})
model = catalog.build({family!r}, {depth}, width={width!r}, img_size={img})
x = torch.randn({batch}, 3, {img}, {img})
with torch.inference_mode():
    for _ in range(3):
        model(x)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range({calls}):
        model(x)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
n = {calls}
print(json.dumps({{"ms": (t1 - t0) / n * 1e3, "faults": (r1.ru_minflt - r0.ru_minflt) / n,
                  "sys_ms": (r1.ru_stime - r0.ru_stime) / n * 1e3}}))
"""


def measure(family: str, args) -> dict:
    code = _CHILD.format(paths=[str(_ROOT), str(_ROOT / "models")], threads=args.threads,
                         family=family, depth=args.depth, width=args.width, img=args.img_size,
                         batch=args.batch, calls=args.calls)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{family}: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", type=str_list, default="paraformer-loop,paraformer-fused,vit",
                   help="comma-separated families (python -m parabench list families)")
    p.add_argument("--depth", type=positive_int, default=4)
    p.add_argument("--batch", type=positive_int, default=8)
    p.add_argument("--width", default="paper", choices=tuple(WIDTHS))
    p.add_argument("--img-size", type=positive_int, default=224)
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--calls", type=positive_int, default=5, help="timed forwards per family")
    args = p.parse_args(argv)
    names = args.families
    unknown = [f for f in names if f not in families.REGISTRY]
    if not names or unknown:
        p.error(f"unknown family {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(families.REGISTRY)}")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    print("| family | ms per call | minor page faults per call | system ms per call |")
    print("|---|---|---|---|")
    for family in names:
        try:
            r = measure(family, args)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"| {family} | {r['ms']:.1f} | {r['faults']:.0f} | {r['sys_ms']:.1f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
