"""Instructions per forward, counted under valgrind's Callgrind: a CPU signal that does
not drift.

On a shared CPU a forward's time drifts by tens of percent from second to second; the
number of instructions it executes does not. torch.utils.benchmark's
`Timer.collect_callgrind` runs the step in a fresh Python under `valgrind
--tool=callgrind` and counts only the timed loop (the model is built in `setup`, before
collection starts). Measured on the 2-core development VM (torch 2.14.1, valgrind 3.19,
tiny widths): two repeats in one process differed by 0.01-0.07%, processes by 0.03%
(fused Para-Former depth 4, batch 8, 11.67M instructions per forward) to 0.3% (tiny
ViT). The price is valgrind's start-up, importing torch and timm under
instrumentation: 70 s per point on a quiet machine, 16-33 min when three counts ran at
once beside other people's work on the two cores. So count few, telling points,
several at a time (`jobs`).

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
import sys
from dataclasses import asdict
from pathlib import Path

from ..errors import UsageError, one_line

__all__ = ["COUNT_PREFIX", "COUNT_UNIT", "count_instructions", "count_key", "count_record",
           "require_valgrind"]

#: Record keys of counts start with this; timing keys start with a family name.
COUNT_PREFIX = "instructions/"
COUNT_UNIT = "instructions"
#: Forwards per repeat. Under Callgrind a tiny forward takes ~10 ms; 20 keep the count
#: of one repeat well above the toggling overhead while costing a fraction of start-up.
DEFAULT_NUMBER = 20
#: The script torch.utils.benchmark runs under valgrind (its name in torch 2.x).
_VALGRIND_SCRIPT = "timer_callgrind.py"
DEFAULT_REPEATS = 2


def count_key(point) -> str:
    return COUNT_PREFIX + point.key


def require_valgrind() -> None:
    """UsageError (one line) when valgrind or callgrind_control is missing."""
    missing = [c for c in ("valgrind", "callgrind_control", "callgrind_annotate")
               if shutil.which(c) is None]
    if missing:
        raise UsageError(f"counting instructions needs valgrind ({', '.join(missing)} not on "
                         "PATH); on Debian/Ubuntu: apt-get install valgrind")


def _setup_code(point, sweep, source: Path) -> str:
    """Runs inside the valgrind process before counting starts: put `source` first on
    the path, check that parabench really comes from there, build the point.

    `Timer.collect_callgrind` also runs the setup once in *this* process, to check the
    statement before paying for valgrind; there the path is left alone and the point is
    built by the parabench already imported. The valgrind side is told apart by the
    script torch writes for it. Only `prepared` is used (not measure.prepare.HeldPoint):
    the counted tree may be a commit from before the holder existed."""
    paths = [str(source), str(source / "models")]
    return "\n".join([
        "import os, sys",
        f"if os.path.basename(sys.argv[0]) == {_VALGRIND_SCRIPT!r}:",
        f"    sys.path[:0] = {paths!r}",
        "    import parabench",
        f"    assert parabench.__file__.startswith({str(source) + os.sep!r}), "
        "parabench.__file__",
        "from parabench.config import Point, sweep_from_dict",
        "from parabench.measure.prepare import prepared",
        f"_point = prepared(Point(**{asdict(point)!r}), sweep_from_dict({sweep.point_dict()!r}))",
        "step = _point.__enter__().step",
    ])


def count_instructions(point, sweep, *, source: str | Path | None = None,
                       number: int = DEFAULT_NUMBER, repeats: int = DEFAULT_REPEATS
                       ) -> list[float]:
    """Instructions per forward of `point`, one value per repeat (all in one valgrind
    process). `source` is the tree whose parabench and models are counted (default: the
    one this parabench was imported from). Raises on any failure; the caller makes it a row."""
    from torch.utils.benchmark import Timer

    if sweep.device != "cpu":
        raise ValueError("instruction counts are CPU-only (valgrind cannot see GPU work)")
    source = Path(source) if source is not None else Path(__file__).resolve().parents[2]
    # The Timer starts `python` from PATH inside valgrind; it must be this interpreter.
    here = os.path.dirname(sys.executable)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != here:
        os.environ["PATH"] = here + os.pathsep + os.environ.get("PATH", "")
    timer = Timer(stmt="step()", setup=_setup_code(point, sweep, source.resolve()),
                  num_threads=sweep.threads or 1)
    stats = timer.collect_callgrind(number=number, repeats=repeats, collect_baseline=False,
                                    retain_out_file=False)
    stats = stats if isinstance(stats, tuple) else (stats,)
    return [s.counts(denoise=True) / number for s in stats]


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
    rec.extra = {"number": number, "repeats": repeats, "counter": "callgrind"}
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
