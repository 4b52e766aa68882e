#!/usr/bin/env python
"""Kernels and MiB of one fused Para-Former level, from shapes: before the fused plan,
after it (CPU), and on CUDA, where fc1's bias and GELU are one pass
(`paraformer.level_traffic`). An estimate, not a measurement: the measured side is
`python -m parabench run --preset fused-goals` (families timed in turns).

    python scripts/fused_traffic.py --ks 1,12,48 --batches 1,8,256 --width paper
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import paraformer

    from parabench.config import WIDTHS
except ImportError:  # a checkout without the package installed (a bare GPU image)
    _ROOT = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(_ROOT), str(_ROOT / "models")]
    import paraformer

    from parabench.config import WIDTHS

PLANS = ("before", "after", "cuda")


def _ints(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,8,48, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return out


def traffic_table(ks, batches, width: str, img_size: int, bytes_per_element: int) -> str:
    w = WIDTHS[width]
    tokens = (img_size // w.patch) ** 2 + 1
    out = ["| batch | K | level | kernels " + " / ".join(PLANS) + " | MiB "
           + " / ".join(PLANS) + " | after/before | cuda/before |",
           "|---|---|---|---|---|---|---|"]
    for b in batches:
        for k in ks:
            for shared in (True, False):
                plans = [paraformer.level_traffic(p, k, b, tokens, w.dim, w.heads, w.head_dim,
                                                  w.mlp_dim, shared=shared,
                                                  bytes_per_element=bytes_per_element)
                         for p in PLANS]
                mib = [sum(r + wr for _, r, wr in p) / 2**20 for p in plans]
                out.append(f"| {b} | {k} | {'first (shared)' if shared else 'deeper'}"
                           f" | {' / '.join(str(len(p)) for p in plans)}"
                           f" | {' / '.join(f'{m:.1f}' for m in mib)}"
                           f" | {mib[1] / mib[0]:.3f} | {mib[2] / mib[0]:.3f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--ks", type=_ints, default=[1, 12, 48], help="branches K (default 1,12,48)")
    p.add_argument("--batches", type=_ints, default=[1, 8, 256], help="default 1,8,256")
    p.add_argument("--width", choices=tuple(WIDTHS), default="paper")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    args = p.parse_args(argv)
    if args.img_size < 1 or args.img_size % WIDTHS[args.width].patch:
        p.error(f"--img-size {args.img_size} is not a multiple of the patch size "
                f"{WIDTHS[args.width].patch}")
    print(traffic_table(args.ks, args.batches, args.width, args.img_size,
                        4 if args.dtype == "float32" else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
