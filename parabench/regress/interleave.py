"""Measure several arms *alternately*, turn by turn (`compare --interleave`, and sweeps
whose schedule is "interleaved").

An arm is some code and what it measures: a checkout (a git ref exported with `git
archive`, WORKTREE for the working tree as it is, or None for this parabench as
imported) and, optionally, a family that replaces each point's own, so that two
commits, or the executions of one model (loop, fused, least-work, ViT), are arms alike.
Each arm is measured by its own worker process (executors/worker.py, started and
spoken to by executors/channel.py, as a sweep's workers are), so each checkout runs its
own commit's parabench and models, under the memory guard and the point timeout.

Why turns. On a shared or virtualised machine the speed of the CPU itself drifts by
tens of percent within seconds; runs measured one after the other inherit that drift,
interleaved turns share it. Measured on the 2-core development VM: two back-to-back
runs of the same code differed by up to 2.4x (median 28%), interleaved turns by at
most 3% on a quiet machine (tests/test_compare_proof.py has the figures). What turns
cannot cancel is a bias that lasts a worker process's lifetime; several sets of
processes, one after the other, measure it, and compare's interval is built over them.

Family arms of one checkout share one run (their keys differ by family); any other
arm has a run of its own, so two commits, or one commit against itself, compare as
two runs.

Which code a checkout arm runs, and the commits that cannot be arms: checkouts.py.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError
from ..measure.load import judge
from .checkouts import trees_for

__all__ = ["Arm", "interleaved_runs"]

@dataclass(frozen=True)
class Arm:
    """The code an arm runs (`ref`: a git ref, WORKTREE, or None for this parabench)
    and the family it measures in place of each point's own (None: the point's)."""

    ref: str | None = None
    family: str | None = None

    @property
    def name(self) -> str:
        return " @ ".join(x for x in (self.family, self.ref) if x) or "this parabench"


def _arm_points(arms, sweep) -> list[tuple]:
    """The cells every arm measures, as one point per arm: the sweep's points, or with
    family arms, each (depth, batch, dtype, mode, workload) once, with the arm's family."""
    with_family = [a.family is not None for a in arms]
    if any(with_family) and not all(with_family):
        raise UsageError("either every arm names a family or none does")
    if not any(with_family):
        return [tuple(p for _ in arms) for p in sweep.points()]
    cells = dict.fromkeys(replace(p, family="") for p in sweep.points())
    return [tuple(replace(c, family=a.family) for a in arms) for c in cells]


def interleaved_runs(arms, sweep, *, store, repo=".", rounds: int = 30, processes: int = 5,
                     turn_ms: float = 25.0, python: str | None = None, command: str = "",
                     point_timeout: float | None = None, memory_limit: int | None = None,
                     log=None) -> list[str]:
    """Measure every point of `sweep` on every arm in alternating turns; store one run
    per checkout and return the run id of each arm (arms of one checkout share one).

    `processes` sets of measuring processes (one per arm) run one set after the other,
    each for `rounds` rounds of every point. A process carries a bias of its own for
    its whole life (where its memory landed, which core's cache it warmed: a no-op
    measured by one pair came out 1.9% fast or 2.4% slow at p < 0.01); only fresh sets
    show how large that is, so compare's interval is built over them
    (`stats.compare_samples`).
    """
    import tempfile

    from ..records import Record
    from ..runner import live_runs, raise_pending_interrupt

    arms = [a if isinstance(a, Arm) else Arm(ref=a) for a in arms]
    if len(arms) < 2:
        raise UsageError("interleaving needs at least two arms")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    cells = _arm_points(arms, sweep)
    with tempfile.TemporaryDirectory(prefix="parabench-ab-") as tmp:
        tmp = Path(tmp)
        trees = trees_for(arms, repo, tmp)
        opts = _Options(sweep, python, tmp, point_timeout, memory_limit, len(arms))
        recs = {cell: [Record.for_point(p, sweep) for p in cell] for cell in cells}
        if arms[0].family:  # the families took turns with each other: their ratios mean
            for rec in (r for rs in recs.values() for r in rs):  # something (report)
                rec.extra["family_arms"] = True
        workers = _Workers(arms, trees, opts, "set1")
        try:
            starts = _run_starts(arms, trees, workers.hello, sweep, rounds, processes,
                                 turn_ms, command)
            with live_runs(store, list(starts.values())) as ids:
                run_of = dict(zip(starts, ids, strict=True))
                run_ids = [run_of[_run_key(i, a)] for i, a in enumerate(arms)]
                for s in range(processes):
                    if s:
                        workers.close()
                        workers = _Workers(arms, trees, opts, f"set{s + 1}")
                    for k, cell in enumerate(cells, 1):
                        _measure_cell(cell, workers, recs[cell], rounds, turn_ms, opts)
                        if s == processes - 1:  # the cell is complete: commit it now
                            for run_id, rec in zip(run_ids, recs[cell], strict=True):
                                if rec.status != "ok":
                                    rec.samples_ms = []
                                store.add_record(run_id, rec)
                        log(f"[set {s + 1}/{processes}] [{k}/{len(cells)}] {_cell_text(cell)}")
                        raise_pending_interrupt()
        finally:
            workers.close()
    return run_ids


def _cell_text(cell) -> str:
    """'d4/b8/float32/eager/infer: loop, fused, vit' for family arms, else the key."""
    fams = list(dict.fromkeys(p.family for p in cell))
    if len(fams) == 1:
        return cell[0].key
    return f"{cell[0].key.split('/', 1)[1]}: {', '.join(fams)}"


def _run_key(i: int, arm: Arm):
    """Which run arm `i` stores into: family arms of one checkout share one."""
    return ("checkout", arm.ref) if arm.family else ("arm", i)


@dataclass(frozen=True)
class _Options:
    sweep: object
    python: str | None
    logdir: Path
    point_timeout: float | None
    memory_limit: int | None
    arms: int

    @property
    def budget(self) -> int | None:
        """The memory guard's budget per worker (CPU only; see memory_guard.py)."""
        from ..executors.memory_guard import default_budget

        if self.sweep.device == "cuda":
            return None
        return self.memory_limit or default_budget(self.arms)

    @property
    def cpu(self) -> int | None:
        """On CPU with one thread, every arm pinned to one core (the highest allowed):
        the two vCPUs of a VM can run at different speeds, and the arms take turns."""
        if (self.sweep.device != "cpu" or self.sweep.threads != 1
                or not hasattr(os, "sched_getaffinity")):
            return None
        return max(os.sched_getaffinity(0))


class _Workers:
    """One set of worker processes, one per arm, started together (each imports torch:
    seconds); a worker that crashed or hung is replaced before the next point."""

    def __init__(self, arms, trees, opts: _Options, name: str):
        self.arms, self.trees, self.opts, self.name = arms, trees, opts, name
        self.procs = [self._spawn(i) for i in range(len(arms))]
        try:
            self.hello = [self._greet(i) for i in range(len(arms))]
        except BaseException:  # one could not start: none is left running
            self.close()
            raise

    def _label(self, i: int) -> str:
        arm, tree = self.arms[i], self.trees[self.arms[i].ref]
        return f"{arm.name} ({tree.label})" if arm.family else tree.label

    def _spawn(self, i: int):
        from ..executors.channel import WorkerProcess

        tree = self.trees[self.arms[i].ref]
        return WorkerProcess(self._label(i), tree=tree.path, python=self.opts.python,
                             module=tree.module, budget=self.opts.budget, cpu=self.opts.cpu,
                             log_path=self.opts.logdir / f"worker-{self.name}-arm{i}.log")

    def _greet(self, i: int) -> dict:
        hello = self.procs[i].hello()
        want = self.trees[self.arms[i].ref].protocol
        if hello.get("protocol") != want:
            raise UsageError(f"cannot measure {self._label(i)}: its worker speaks protocol "
                             f"{hello.get('protocol')}, not {want}")
        return hello

    def _ready(self, i: int):
        """Arm `i`'s worker, a new one in place of one that crashed or hung."""
        if self.procs[i] is None or not self.procs[i].alive():
            self.procs[i] = self._spawn(i)
            self._greet(i)
        return self.procs[i]

    def ask_all(self, msgs: dict[int, dict]) -> dict[int, dict]:
        """Each arm its message at once (builds: every arm loads and warms its model in
        parallel), then each reply as `ask` gives it."""
        from ..executors.channel import WorkerGone

        sent = set()
        for i, msg in msgs.items():
            try:
                self._ready(i).send(**msg)
                sent.add(i)
            except WorkerGone:
                pass  # asked again below, on a fresh worker, where the failure is a row
        return {i: self.ask(i, _sent=i in sent, **msg) for i, msg in msgs.items()}

    def ask(self, i: int, _sent: bool = False, **msg) -> dict:
        """The reply of arm `i`'s worker; a crash or a hang becomes an error reply (with
        `lost`), and the worker is replaced before the next point."""
        from ..executors.channel import WorkerGone, WorkerTimedOut

        w = self._ready(i) if not _sent else self.procs[i]
        try:
            if _sent:
                reply = w.read(self.opts.point_timeout)
                if reply is None:
                    w.kill()
                    raise WorkerTimedOut(f"no answer within {self.opts.point_timeout:g} s; "
                                         f"worker {w.pid} was killed")
                return reply
            return w.ask(timeout=self.opts.point_timeout, **msg)
        except WorkerTimedOut as e:
            reason = f"timed out: {e} (--point-timeout); a new worker took over"
            oom = False
        except WorkerGone as e:
            reason, oom = f"{e} while measuring this point; a new worker took over", e.oom_killed
        w.stop()
        self.procs[i] = None
        return {"error": reason, "oom": oom, "lost": True}

    def close(self) -> None:
        for w in self.procs:
            if w is not None:
                w.stop()


def _run_starts(arms, trees, hello, sweep, rounds, processes, turn_ms, command) -> dict:
    """{run key: RunStart} for each run (see `_run_key`), stamped with its first
    worker's environment and its checkout's git state."""
    from ..runner import RunStart

    starts = {}
    keys = [_run_key(i, a) for i, a in enumerate(arms)]
    for key, arm, h in zip(keys, arms, hello, strict=True):
        if key in starts:
            continue
        tree = trees[arm.ref]
        own = [a for k, a in zip(keys, arms, strict=True) if k == key]
        others = [a.name for k, a in zip(keys, arms, strict=True) if k != key]
        env = dict(h.get("env") or {})
        env["git"] = {"commit": tree.commit or None, "dirty": tree.dirty}
        fams = tuple(a.family for a in own if a.family) or sweep.families
        starts[key] = RunStart(
            sweep={**replace(sweep, families=fams).to_dict(),
                   "interleaved": {"rounds": rounds, "processes": processes,
                                   "turn_ms": turn_ms, "with": ", ".join(others),
                                   "arms": [a.name for a in arms]}},
            preset=f"interleaved:{sweep.name}",
            command=command or f"interleave {' '.join(a.name for a in arms)}", env=env)
    return starts


def _fail(rec, reply) -> None:
    rec.status = "oom" if reply.get("oom") else "error"
    rec.reason = reply["error"]


def _measure_cell(cell, workers: _Workers, recs, rounds, turn_ms, opts: _Options) -> None:
    """`rounds` rounds of turns of one cell on one set of processes, appended to each
    arm's record. Turn sizes are fixed by the first set, so every turn of a record has
    the same size; an arm that fails keeps its failure and the others go on."""
    from dataclasses import asdict

    live = [i for i, rec in enumerate(recs) if rec.status == "ok"]
    built = workers.ask_all({i: {"cmd": "build", "point": asdict(cell[i]),
                                 "sweep": opts.sweep.point_dict()} for i in live})
    for i in live:
        b = built[i]
        if "skipped" in b:
            recs[i].status, recs[i].reason = "skipped", b["skipped"]
        elif "error" in b:
            _fail(recs[i], b)
        else:
            recs[i].extra.update(b.get("evidence") or {})  # e.g. the fused branch group
    live = [i for i in live if recs[i].status == "ok"]
    if not live:
        return
    n = next((recs[i].extra["turn_size"] for i in live if "turn_size" in recs[i].extra), None)
    if n is None:
        # the builds ran side by side, so their warm-up times are not the arms' own: one
        # short turn each, in sequence, says how long a call takes
        per_call = {}
        for i in live:
            got = workers.ask(i, cmd="time", n=3)
            if "error" in got:
                _fail(recs[i], got)
            else:
                per_call[i] = sorted(got["samples"])[1]
        live = [i for i in live if i in per_call]
        if not live:
            return
        n = max(1, int(turn_ms / max(max(per_call.values()), 1e-3)))
        for rec in recs:  # a turn is compare's unit: its calls share a moment of the machine
            rec.extra["turn_size"] = n
            rec.extra["rounds_per_process"] = rounds
    for r in range(rounds):
        # every arm goes first in turn: with two arms, A B then B A
        for i in live[r % len(live):] + live[:r % len(live)]:
            if recs[i].status != "ok":
                continue
            got = workers.ask(i, cmd="time", n=n)
            if "error" in got:  # this arm's row fails; the others keep their samples
                _fail(recs[i], got)
                continue
            recs[i].samples_ms.extend(got["samples"])
            _add_load(recs[i].extra, got.get("load"))


def _add_load(extra: dict, turn: dict | None) -> None:
    """A record's load over its turns: the load average before its first turn and
    after its last, other processes' CPU seconds and the windows summed, and busy judged
    on those sums (a 100 ms turn alone is a few clock ticks of CPU time)."""
    if not turn:
        return  # a protocol-1 worker does not say
    if "load_1m_before" not in extra:
        extra["load_1m_before"] = turn["load_1m_before"]
    extra["load_1m_after"] = turn["load_1m_after"]
    for key in ("other_cpu_s", "load_window_s"):
        if turn.get(key) is not None:
            extra[key] = round(extra.get(key, 0.0) + turn[key], 2)
    extra["load_threads"] = turn["load_threads"]
    extra["busy"] = judge(extra)
