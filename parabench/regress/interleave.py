"""Measure two commits *alternately* and store them as two runs (`compare --interleave`).

Each side is a checkout (a git ref exported with `git archive`, or WORKTREE, the
working tree as it is) measured by its own process, `python -m parabench.regress.worker`
run from that checkout, so each side runs its own commit's parabench and models. The
two processes take turns of a few tens of milliseconds per point. On a shared or
virtualised machine the speed of the CPU itself drifts by tens of percent within
seconds; runs measured one after the other inherit that drift, interleaved turns share
it. Measured on the 2-core development VM: two back-to-back runs of the same code
differed by up to 2.4x (median 28%), interleaved turns by at most 3% on a quiet
machine (tests/test_compare_proof.py has the figures). What turns cannot cancel is a
bias that lasts a worker process's lifetime; several pairs of processes, one after the
other, measure it, and compare's interval is built over pairs.

A commit that predates `parabench/regress/worker.py` cannot be measured this way (its
code has no worker to run): that is a UsageError naming the commit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..errors import UsageError
from .sides import git_commit_of

__all__ = ["WORKTREE", "checkout", "interleaved_runs"]

#: Name for the uncommitted working tree as a side of `interleaved_runs`.
WORKTREE = "WORKTREE"
#: The worker module, and its file inside a checkout.
_WORKER_MODULE = "parabench.regress.worker"
_WORKER_FILE = Path("parabench", "regress", "worker.py")
#: The protocol this driver speaks (worker.PROTOCOL of the same version).
_PROTOCOL = 1


class _Worker:
    """One checkout's measuring process, driven line by line over pipes."""

    def __init__(self, path: Path, label: str, python: str, logdir: Path, cpu: int | None):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(path), str(path / "models")])
        if cpu is not None:
            env["PARABENCH_AB_CPU"] = str(cpu)
        self.label = label
        self.log = open(logdir / f"worker-{label}.log", "w")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [python, "-m", _WORKER_MODULE], cwd=path, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1,
        )

    def ask(self, **msg) -> dict:
        if msg:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.log.flush()
            tail = Path(self.log.name).read_text()[-800:]
            raise UsageError(f"measuring process for {self.label} died:\n{tail}")
        return json.loads(line)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
        except (OSError, subprocess.SubprocessError):
            self.proc.kill()
        self.log.close()


def checkout(ref: str, repo: Path, dest: Path) -> tuple[Path, str, bool]:
    """(source tree, commit, dirty) for a git ref (exported with `git archive`) or for
    WORKTREE (the repository's working tree as it is)."""
    import tarfile

    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=repo,
                             capture_output=True, text=True)
    except OSError:
        top = None
    if top is None or top.returncode != 0:
        raise UsageError(f"{repo} is not a git repository")
    top_path = Path(top.stdout.strip())
    if ref == WORKTREE:
        head = git_commit_of("HEAD", top_path)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=top_path, capture_output=True, text=True)
        return top_path, head or "", bool(status.stdout.strip())
    commit = git_commit_of(ref, top_path)
    if commit is None:
        raise UsageError(f"{ref!r} is not a git ref in {top_path} (or use {WORKTREE})")
    dest.mkdir(parents=True)
    tar = dest.parent / f"{dest.name}.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(tar), commit], cwd=top_path,
                   check=True, capture_output=True)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    tar.unlink()
    return dest, commit, False


def _check_worker(tree: Path, ref: str, commit: str) -> None:
    if not (tree / _WORKER_FILE).is_file():
        raise UsageError(
            f"{ref} ({commit[:10] or 'no commit'}) predates the interleave worker "
            f"({_WORKER_FILE.as_posix()}): compare --interleave cannot measure it; compare "
            "stored runs or asv results instead")


def _shared_cpu(sweep) -> int | None:
    """On CPU with one thread, pin both sides to one core (the highest allowed): the
    two vCPUs of a VM can run at different speeds, and the sides take turns anyway."""
    if sweep.device != "cpu" or sweep.threads != 1 or not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def _greet(workers, labels) -> list[dict]:
    """Each worker's hello (its environment), or a UsageError naming the side."""
    hello = [w.ask() for w in workers]
    for h, lab in zip(hello, labels, strict=True):
        if "error" in h:
            raise UsageError(f"cannot measure {lab}: {h['error']}")
        if h.get("protocol") != _PROTOCOL:
            raise UsageError(f"cannot measure {lab}: its worker speaks protocol "
                             f"{h.get('protocol')}, this parabench {_PROTOCOL}")
    return hello


def interleaved_runs(ref_a: str, ref_b: str, sweep, *, store, repo=".", rounds: int = 30,
                     processes: int = 5, turn_ms: float = 25.0, python: str | None = None,
                     command: str = "", log=None) -> tuple[str, str]:
    """Measure every point of `sweep` on two checkouts in alternating turns; store the
    two sides as two runs and return their ids (baseline, contender).

    `processes` pairs of measuring processes run one pair after the other, each for
    `rounds` rounds of every point. A process carries a bias of its own for its whole
    life (where its memory landed, which core's cache it warmed: a no-op measured by
    one pair came out 1.9% fast or 2.4% slow at p < 0.01); only fresh pairs show how
    large that is, so compare's interval is built over pairs (`stats.compare_samples`).
    """
    import tempfile

    from ..records import Record

    log = log or (lambda msg: print(msg, file=sys.stderr))
    python = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="parabench-ab-") as tmp:
        tmp = Path(tmp)
        trees = [checkout(r, Path(repo), tmp / f"src{i}") for i, r in enumerate((ref_a, ref_b))]
        for ref, (tree, commit, _) in zip((ref_a, ref_b), trees, strict=True):
            _check_worker(tree, ref, commit)
        labels = [f"{r} ({c[:10]}{'+dirty' if d else ''})"
                  for r, (_, c, d) in zip((ref_a, ref_b), trees, strict=True)]
        cpu = _shared_cpu(sweep)
        points = sweep.points()
        recs = {p.key: [Record.for_point(p, sweep), Record.for_point(p, sweep)] for p in points}
        run_ids: list[str] = []
        for s in range(processes):
            workers = [_Worker(t[0], f"side{i}-pair{s}", python, tmp, cpu)
                       for i, t in enumerate(trees)]
            try:
                hello = _greet(workers, labels)
                if not run_ids:
                    run_ids = _start_runs(store, sweep, trees, hello, (ref_a, ref_b),
                                          rounds, processes, turn_ms, command)
                for k, point in enumerate(points, 1):
                    _measure_pair(point, sweep, workers, recs[point.key], rounds, turn_ms)
                    if s == processes - 1:  # the point is complete: commit it now
                        for rid, rec in zip(run_ids, recs[point.key], strict=True):
                            if rec.status != "ok":
                                rec.samples_ms = []
                            store.add_record(rid, rec)
                    log(f"[pair {s + 1}/{processes}] [{k}/{len(points)}] {point.key}")
            finally:
                for w in workers:
                    w.close()
        for rid in run_ids:
            store.finish_run(rid, "finished")
        return run_ids[0], run_ids[1]


def _start_runs(store, sweep, trees, hello, refs, rounds, processes, turn_ms,
                command) -> list[str]:
    run_ids = []
    for (_, commit, dirty), h, ref, other in zip(trees, hello, refs, refs[::-1], strict=True):
        env = dict(h["env"])
        env["git"] = {"commit": commit or None, "dirty": dirty}
        run_ids.append(store.start_run(
            sweep={**sweep.to_dict(), "interleaved": {"rounds": rounds, "processes": processes,
                                                      "turn_ms": turn_ms, "with": other}},
            preset=f"interleaved:{sweep.name}", command=command or f"ab {ref}", env=env))
    return run_ids


def _measure_pair(point, sweep, workers, recs, rounds, turn_ms) -> None:
    """`rounds` alternating turns of one point on one pair of processes, appended to
    `recs` (baseline, contender). The calls per turn are fixed by the first pair, so
    every turn of a record has the same size; a side that fails keeps its failure."""
    from dataclasses import asdict

    if any(rec.status != "ok" for rec in recs):
        return
    built = [w.ask(cmd="build", point=asdict(point), sweep=sweep.to_dict()) for w in workers]
    for rec, b in zip(recs, built, strict=True):
        if "skipped" in b:
            rec.status, rec.reason = "skipped", b["skipped"]
        elif "error" in b:
            rec.status, rec.reason = ("oom" if b.get("oom") else "error"), b["error"]
    if any(rec.status != "ok" for rec in recs):
        return
    n = recs[0].extra.get("turn_size")
    if n is None:
        slowest = max(b["per_call_ms"] for b in built)
        n = max(1, int(turn_ms / max(slowest, 1e-3)))
        for rec in recs:  # a turn is compare's unit: its calls share a moment of the machine
            rec.extra["turn_size"] = n
            rec.extra["rounds_per_process"] = rounds
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)  # neither side always goes first
        for i in order:
            got = workers[i].ask(cmd="time", n=n)
            if "error" in got:  # that side's row fails; the other keeps its samples
                recs[i].status = "oom" if got.get("oom") else "error"
                recs[i].reason = got["error"]
                return
            recs[i].samples_ms.extend(got["samples"])
