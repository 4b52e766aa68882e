#!/usr/bin/env python3
"""First light: the one command that settles the claim in a GPU's first six minutes.

    python3 scripts/first_light.py --out "$OUT"                 # on a GPU (about 5 minutes)
    python3 scripts/first_light.py --out /tmp/fl --device cpu   # the CPU rehearsal CI runs

Parts, in the order they answer the question, each a separate process under its own
time limit (a part that hangs or fails is killed or recorded, and the next one runs):

  device   nvidia-smi and `parabench env`: what this machine is
  bench    Para-Former loop / fused / least-work, its serial twin and timm's ViT-S
           timed in turns (`run --preset fused-goals`), CUDA graphs, bf16, batch 1 and
           256, K = 1, 8, 48; the ratios from its report (fused's error against the
           loop is a `gpu` test)
  sweep    the real runner and process workers: fused, twin, ViT at depth 1, 8, 48,
           batch 1 and 256, eager and graph, bf16; NVML energy at batch 256
  tests    the `gpu`-marked tests
  report   the HTML/Markdown report of that sweep
  kernels  torch profiler at batch 1: kernels per forward at K = 1, 8, 48

The whole command keeps to a budget (--budget, 360 s): a part's limit is its own
limit, or what is left of the budget after the least time every later part needs,
whichever is smaller. Work happens under --work (outside the output folder); after
each part the output folder gets an updated summary.txt (the parts table, the bench
table, the headline figures) and, once measured, bench.csv; at the end everything
else (logs, databases, report, traces) goes into one first-light.tar.gz. Three files.

With --device cpu every part runs its CPU equivalent (tiny width, eager; graph points
become `skipped` rows; the GPU tests skip), and every figure is marked as a rehearsal:
CI runs it so that a change which would break the first GPU run breaks CI first.

Standard library only: this must run on the bare GPU image before anything is known
to work. The project itself is put on the path by gpu_check.sh (PYTHONPATH).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from first_light_figures import headline, parts_table, read_bench_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@dataclass
class Part:
    name: str
    limit_s: int  # its own limit
    least_s: int  # the least it needs: earlier parts leave it this much of the budget
    commands: list[list[str]]
    rc: int | None = None
    seconds: float = 0.0
    note: str = ""
    logs: list[str] = field(default_factory=list)


def plan(device: str, work: Path) -> list[Part]:
    """The parts for `device` ("cuda" or "cpu"), writing under `work`."""
    gpu = device == "cuda"
    pb = [PY, "-m", "parabench"]
    size = (["--width", "paper", "--img-size", "224"] if gpu
            else ["--width", "tiny", "--img-size", "32"])
    families = "paraformer-fused,paraformer-serial,vit"
    # the fused goals' arms (loop, fused, least-work, the serial twin, ViT-S) in turns
    bench = pb + ["run", "--preset", "fused-goals", "--device", device, "--depth", "1,8,48",
                  *size, "--db", str(work / "bench.db"), "--no-progress",
                  "--point-timeout", "60"]
    bench += (["--mode", "graph", "--dtype", "bfloat16", "--batch", "1,256", "--rounds", "5",
               "--processes", "2", "--turn-ms", "25"] if gpu else
              ["--batch", "1,8", "--rounds", "3", "--processes", "1", "--turn-ms", "5",
               "--threads", "1"])
    bench_out = [pb + ["export", "--db", str(work / "bench.db"), "--format", "csv", "-o",
                       str(work / "bench.csv")],
                 pb + ["report", "--db", str(work / "bench.db"), "--out",
                       str(work / "bench-report")]]
    sweep = pb + ["run", "--family", families, "--depth", "1,8,48", "--mode", "eager,graph",
                  "--dtype", "bfloat16", "--device", device, *size, "--db",
                  str(work / "first.db"), "--no-progress", "--point-timeout", "60"]
    sweep += (["--batch", "1,256", "--min-time", "0.2"] if gpu else
              ["--batch", "1,8", "--min-time", "0.02", "--min-samples", "5", "--threads", "1"])
    gpu_tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                       if "mark.gpu" in p.read_text())
    kernels = pb + ["run", "--family", families, "--depth", "1,8,48", "--batch", "1",
                    "--mode", "eager", "--dtype", "bfloat16", "--device", device, *size,
                    "--profile", "--trace-dir", str(work / "traces"), "--no-telemetry",
                    "--db", str(work / "kernels.db"), "--no-progress", "--point-timeout", "60"]
    if not gpu:
        kernels += ["--min-time", "0.02", "--min-samples", "5", "--threads", "1"]
    smi = ["nvidia-smi"] if shutil.which("nvidia-smi") else []
    return [
        Part("device", 45, 10, ([smi] if smi else []) + [pb + ["env"]]),
        Part("bench", 120, 30, [bench, *bench_out]),
        Part("sweep", 150, 40, [sweep, pb + ["export", "--db", str(work / "first.db"),
                                               "--format", "json", "-o",
                                               str(work / "sweep.json")]]),
        Part("tests", 150, 30, [[PY, "-m", "pytest", "-q", "-m", "gpu", "-rs",
                                 "-p", "no:cacheprovider", *gpu_tests]]),
        Part("report", 60, 25, [pb + ["report", "--db", str(work / "first.db"),
                                      "--out", str(work / "report")]]),
        Part("kernels", 75, 25, [kernels, pb + ["export", "--db", str(work / "kernels.db"),
                                                "--format", "json", "-o",
                                                str(work / "kernels.json")]]),
    ]


def part_limit(part: Part, later: list[Part], left_s: float) -> float | None:
    """The part's own limit, or what the budget has left after reserving the least time
    of every later part, whichever is smaller; None when that is under half the part's
    own least (it would only be killed)."""
    limit = min(part.limit_s, left_s - sum(p.least_s for p in later))
    return None if limit < part.least_s / 2 else limit


def run_part(part: Part, limit_s: float, work: Path) -> None:
    """Run the part's commands in turn, in their own process group, under `limit_s`
    in all; rc 124 when the limit killed it (as coreutils' timeout says)."""
    t0 = time.monotonic()
    log_path = work / f"{part.name}.log"
    part.logs.append(log_path.name)
    with log_path.open("w") as log:
        for cmd in part.commands:
            left = limit_s - (time.monotonic() - t0)
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            if left <= 0:
                part.rc, part.note = 124, f"limit {limit_s:.0f} s reached"
                break
            try:
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as e:
                part.rc, part.note = 127, f"{cmd[0]}: {e.strerror or e}"
                break
            try:
                part.rc = proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                part.rc, part.note = 124, f"killed at its limit of {limit_s:.0f} s"
                break
            if part.rc != 0:
                part.note = f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} exited {part.rc}"
                break
    part.seconds = time.monotonic() - t0


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the part's process group (the runner then marks its run interrupted and
    keeps every finished point), SIGKILL whatever is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def write_summary(out: Path, work: Path, parts: list[Part], device: str,
                  budget_s: float, started: float) -> str:
    """summary.txt in the output folder, rewritten after each part (so a command cut
    short still brings back what it measured), and bench.csv once it exists."""
    if (work / "bench.csv").exists():
        shutil.copyfile(work / "bench.csv", out / "bench.csv")
    rehearsal = device != "cuda"
    lines = [f"first light on {device}" + (" (CPU REHEARSAL: no figure below is a GPU figure)"
                                           if rehearsal else ""),
             f"elapsed {time.monotonic() - started:.0f} s of a {budget_s:.0f} s budget", "",
             parts_table(parts), "", "bench: families timed in turns (ms per call; ratios per "
             "round, median [95% interval])", read_bench_table(work / "bench-report"), "",
             "headline figures",
             *headline(work, device, parts)]
    text = "\n".join(lines) + "\n"
    (out / "summary.txt").write_text(text)
    return text


#: a GPU job brings back files of at most 16 MiB
MAX_FILE_BYTES = 15 * 2**20


def pack(out: Path, work: Path) -> str:
    """Everything under `work` into one tarball (databases, logs, report, traces). Over
    what a GPU job brings back, it is packed again without the profiler traces (their
    kernel counts are in kernels.db); returns a note saying so, or ""."""
    tmp = out / "first-light.tar.gz.part"
    for skip in (None, "traces"):
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(work, arcname="first-light", filter=lambda t, skip=skip: None if skip and
                    t.name.startswith(f"first-light/{skip}") else t)
        if tmp.stat().st_size <= MAX_FILE_BYTES:
            break
    tmp.replace(out / "first-light.tar.gz")
    if skip:
        return f"first-light.tar.gz: traces left out (over {MAX_FILE_BYTES >> 20} MiB with them)"
    return ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--out", type=Path, required=True, help="output folder (three files)")
    ap.add_argument("--work", type=Path, help="working folder (default: a new one in /tmp)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--budget", type=float, default=360.0, help="seconds for all parts")
    ap.add_argument("--only", help="comma list of parts to run (default: all)")
    args = ap.parse_args(argv)
    if not 30 <= args.budget <= 3600:
        ap.error(f"--budget must be between 30 and 3600 s, got {args.budget:g}")
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(f"/tmp/first-light-{os.getpid()}")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    parts = plan(args.device, work)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = sorted(set(wanted) - {p.name for p in parts})
        if unknown or not wanted:
            ap.error(f"--only: unknown part(s) {', '.join(unknown) or repr(args.only)}; "
                     f"choose from {', '.join(p.name for p in parts)}")
        parts = [p for p in parts if p.name in wanted]
    for i, part in enumerate(parts):
        left = args.budget - (time.monotonic() - started)
        limit = part_limit(part, parts[i + 1:], left)
        if limit is None:
            part.note = f"not run: {left:.0f} s of the budget left"
            print(f"== {part.name}: {part.note}", flush=True)
            continue
        print(f"== {part.name} (limit {limit:.0f} s)", flush=True)
        run_part(part, limit, work)
        print(f"   rc {part.rc} in {part.seconds:.0f} s {part.note}", flush=True)
        write_summary(args.out, work, parts, args.device, args.budget, started)
    note = pack(args.out, work)
    text = write_summary(args.out, work, parts, args.device, args.budget, started)
    if note:
        text += note + "\n"
        (args.out / "summary.txt").write_text(text)
    print()
    print(text, end="")
    failed = [p for p in parts if p.rc not in (0, None) or p.note.startswith("not run")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
