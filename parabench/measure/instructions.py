"""Instructions per forward, counted under valgrind's Callgrind: a CPU signal that does
not drift.

On a shared CPU a forward's time drifts by tens of percent from second to second; the
number of instructions it executes does not. The point runs in a fresh Python under
`valgrind --tool=callgrind`, built from the tree given, with Callgrind's instrumentation
off until the model is built and warm; only the counted loops are collected, each
dumped to a file of its own whose `totals:` line is the count. Measured on the 2-core
development VM (torch 2.14.1, valgrind 3.19, tiny widths): two repeats in one process
differed by 0.01-0.2 %, processes by 0.03 % (fused Para-Former depth 4, batch 8, 11.6M
instructions per forward) to 0.3 % (tiny ViT). The price is valgrind's start-up, torch's
import at plain valgrind speed and a forward at Callgrind's (1.8 s): 105 s per point on
a quiet machine, where instrumenting from the start (torch.utils.benchmark's
`collect_callgrind`) took 270 s. So count few, telling points, several at a time
(`jobs`).

What counts miss: a regression that costs time without costing instructions (cache
misses, memory bandwidth, a slower library on another CPU, anything on a GPU). Those
still need interleaved timing (`compare --interleave`) or a GPU runner.

A count is stored as a record of its own kind: key `instructions/<point key>`, unit
`instructions`, one sample per repeat (instructions per forward), so it can never be
mistaken for a latency. The step is built by `measure.prepare.prepared`, as `run`
builds it, from the source tree given (a git checkout), so two commits can be counted
by one parabench.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from ..errors import UsageError, one_line

__all__ = ["COUNT_PREFIX", "COUNT_UNIT", "count_instructions", "count_key", "count_record",
           "require_valgrind"]

#: Record keys of counts start with this; timing keys start with a family name.
COUNT_PREFIX = "instructions/"
COUNT_UNIT = "instructions"
#: Forwards per repeat. Under Callgrind a forward of the tiny fused Para-Former (depth 4,
#: batch 8, 11.6M instructions) takes about 1.8 s on the 2-core VM; 10 keep one repeat's
#: count far above the toggling overhead and its spread between repeats under 0.1 %.
DEFAULT_NUMBER = 10
DEFAULT_REPEATS = 2
#: Forwards run before counting, twice: uninstrumented (kernels JIT-compiled, caches and
#: allocator warm), then instrumented but not collected (Callgrind's own translations).
_WARMUP = 2


def count_key(point) -> str:
    return COUNT_PREFIX + point.key


def require_valgrind() -> None:
    """UsageError (one line) when valgrind or callgrind_control is missing."""
    missing = [c for c in ("valgrind", "callgrind_control") if shutil.which(c) is None]
    if missing:
        raise UsageError(f"counting instructions needs valgrind ({', '.join(missing)} not on "
                         "PATH); on Debian/Ubuntu: apt-get install valgrind")


def _build_code(point, sweep, source: Path) -> str:
    """The first part of the counted program: put `source` first on the path, check that
    parabench really comes from there, build the point as `run` builds it, as `step`.
    Only `prepared` is used (not measure.prepare.HeldPoint): the counted tree may be a
    commit from before the holder existed."""
    paths = [str(source), str(source / "models")]
    return "\n".join([
        "import os, sys",
        f"sys.path[:0] = {paths!r}",
        "import parabench",
        f"assert parabench.__file__.startswith({str(source) + os.sep!r}), parabench.__file__",
        "import torch",
        "from parabench.config import Point, sweep_from_dict",
        "from parabench.measure.prepare import prepared",
        f"torch.set_num_threads({sweep.threads or 1})",
        f"_held = prepared(Point(**{asdict(point)!r}), sweep_from_dict({sweep.point_dict()!r}))",
        "step = _held.__enter__().step",
    ])


def _count_code(number: int, repeats: int) -> str:
    """The second part: warm up, switch Callgrind's instrumentation on, then count
    `repeats` loops of `number` forwards, each dumped to a file of its own.

    Valgrind runs with instrumentation off until here, so importing torch and building
    the model run at plain valgrind speed: torch.utils.benchmark's `collect_callgrind`
    instruments from the start, and that made a count 4.5 minutes instead of 2 on the
    2-core VM. `callgrind_control` switches it on from outside; Callgrind hears the
    command only while this process runs, hence the busy wait."""
    return "\n".join([
        "import subprocess",
        f"for _ in range({_WARMUP}): step()",
        "_ctl = subprocess.Popen(['callgrind_control', '-i', 'on', str(os.getpid())],",
        "                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)",
        "while _ctl.poll() is None:",
        "    pass",
        "_said = _ctl.stdout.read()",
        "if _ctl.returncode or 'OK' not in _said:",
        "    sys.exit('callgrind_control could not switch instrumentation on: ' + "
        "' '.join(_said.split()))",
        f"for _ in range({_WARMUP}): step()",
        f"for _ in range({repeats}):",
        "    torch._C._valgrind_toggle()",
        f"    for _ in range({number}): step()",
        "    torch._C._valgrind_toggle_and_dump_stats()",
        "sys.stdout.flush()",
        "os._exit(0)  # the counts are dumped: skip tearing torch down at valgrind's speed",
    ])


def _totals(out_dir: Path, repeats: int) -> list[int]:
    """Instructions of each dumped repeat: the `totals:` line of callgrind.out.1..N
    (files that hold one dump each, so no callgrind_annotate is needed)."""
    counts = []
    for i in range(1, repeats + 1):
        path = out_dir / f"callgrind.out.{i}"
        lines = path.read_text().splitlines() if path.exists() else []
        total = [ln.split()[1] for ln in lines if ln.startswith("totals:")]
        if len(total) != 1:
            raise RuntimeError(f"Callgrind wrote no count for repeat {i} ({path.name})")
        counts.append(int(total[0]))
    return counts


def _failure(stderr: str) -> str:
    """The last line the counted program printed, without valgrind's own `==pid==` lines."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("==")]
    return lines[-1] if lines else "no message"


def count_instructions(point, sweep, *, source: str | Path | None = None,
                       number: int = DEFAULT_NUMBER, repeats: int = DEFAULT_REPEATS
                       ) -> list[float]:
    """Instructions per forward of `point`, one value per repeat (all in one valgrind
    process). `source` is the tree whose parabench and models are counted (default: the
    one this parabench was imported from). Raises on any failure; the caller makes it a row."""
    if sweep.device != "cpu":
        raise ValueError("instruction counts are CPU-only (valgrind cannot see GPU work)")
    source = Path(source) if source is not None else Path(__file__).resolve().parents[2]
    code = _build_code(point, sweep, source.resolve()) + "\n" + _count_code(number, repeats)
    with tempfile.TemporaryDirectory(prefix="parabench-count-") as tmp:
        out_dir = Path(tmp)
        (out_dir / "count.py").write_text(code + "\n")
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
             f"--callgrind-out-file={out_dir / 'callgrind.out'}", sys.executable,
             str(out_dir / "count.py")],
            cwd=out_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"the count under valgrind exited {done.returncode}: "
                               f"{_failure(done.stderr)}")
        return [total / number for total in _totals(out_dir, repeats)]


def count_record(point, sweep, *, source=None, number: int = DEFAULT_NUMBER,
                 repeats: int = DEFAULT_REPEATS):
    """The Record of one point's count (unit instructions, its own key); a failure is an
    error or skipped row, never an exception. Runs wherever the runner's executor put
    the point: each count is a valgrind process of its own."""
    from ..catalog import model_info
    from ..records import Record
    from ..workloads import unsupported

    rec = Record.for_point(point, sweep, unit=COUNT_UNIT)
    rec.key = count_key(point)
    rec.extra = {"number": number, "repeats": repeats, "counter": "callgrind totals"}
    reason = unsupported(point.mode, point.workload, sweep.device)
    if reason:
        rec.status, rec.reason = "skipped", reason
        return rec
    try:
        info = model_info(point.family, point.depth, width=sweep.width, img_size=sweep.img_size)
        rec.params, rec.flops = info["params"], info["flops"]
        rec.samples_ms = count_instructions(point, sweep, source=source, number=number,
                                            repeats=repeats)
    except Exception as e:  # noqa: BLE001 (every failure is a row, never a lost run)
        rec.status, rec.reason, rec.samples_ms = "error", one_line(e, 300), []
    return rec
