"""The two sides of a comparison: what A and B name, and their benchmarks.

A side is either a run in the parabench store (raw samples per point; named by run id,
'latest' or 'latest~N') or the asv results of one git commit
(`.asv/results/<machine>/<hash8>-<env>.json`: raw samples when asv ran with
`--record-samples`, else the median and its 99% interval).

Results from different machines or software environments are not comparable:
`environment_differences` lists what differs, and `compare.compare_sides` refuses
them unless told otherwise.
"""
from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .asv_results import commit_files, read_result_file

__all__ = [
    "Bench",
    "Side",
    "environment_differences",
    "git_commit_of",
    "load_asv_side",
    "load_pair",
    "load_store_side",
    "resolve_side",
]

_LATEST = re.compile(r"latest(?:~\d+)?")


@dataclass
class Bench:
    """One comparable point of one side."""

    key: str
    unit: str  # "ms"/"seconds": latencies; "instructions": counts; else a tracked value
    samples: list = field(default_factory=list)
    value: float | None = None  # median (latency) or the tracked value
    ci: tuple[float, float] | None = None
    status: str = "ok"  # ok | error | oom | skipped
    reason: str | None = None
    family: str | None = None
    depth: int | None = None
    batch: int | None = None
    mode: str | None = None
    #: samples per interleaved turn (compare's unit), None when unknown
    turn_size: int | None = None
    #: interleaved rounds per pair of measuring processes, None when one pair (or unknown)
    rounds_per_process: int | None = None

    @property
    def is_latency(self) -> bool:
        return self.unit in ("ms", "seconds")


@dataclass
class Side:
    kind: str  # "store" | "asv"
    ident: str  # run id or full commit hash
    label: str
    env: dict
    benches: dict = field(default_factory=dict)
    dirty: bool = False
    interleaved: bool = False  # measured in alternating turns with the other side


# -- store side ------------------------------------------------------------------------
def load_store_side(store, run_id: str) -> Side:
    run = store.run(run_id)
    env = json.loads(run.get("env_json") or "{}")
    gpu = env.get("gpu") or {}
    side_env = {
        "machine": run.get("machine") or env.get("machine"),
        "gpu": gpu.get("name") if gpu.get("available") else None,
        "torch": env.get("torch"),
        "cuda": env.get("cuda"),
        "threads": env.get("threads"),
    }
    commit = (run.get("git_commit") or "")[:10]
    label = f"run {run_id}" + (f" ({commit}{'+dirty' if run.get('git_dirty') else ''})"
                               if commit else "")
    try:
        sweep = json.loads(run.get("sweep_json") or "{}")
    except ValueError:
        sweep = {}
    df = store.records_frame([run_id])
    side_env.update(_measured_on(df))
    side = Side("store", run_id, label, side_env, dirty=bool(run.get("git_dirty")),
                interleaved=bool((sweep or {}).get("interleaved")))
    for r in df.itertuples(index=False):
        samples = list(r.samples_ms or [])
        side.benches[r.key] = Bench(
            key=r.key, unit=getattr(r, "unit", None) or "ms", samples=samples,
            value=float(r.median_ms) if r.median_ms is not None and samples else None,
            status=r.status, reason=r.reason, family=r.family, depth=int(r.depth),
            batch=int(r.batch), mode=r.mode,
            turn_size=(r.extra or {}).get("turn_size") if side.interleaved else None,
            rounds_per_process=((r.extra or {}).get("rounds_per_process")
                                if side.interleaved else None),
        )
    return side


def _measured_on(df) -> dict:
    """Machines and GPUs of the workers that measured a run's records (schema 3), which
    can differ from the driver's when the run was fanned out: these are what must match."""
    out = {}
    if "machine" in df and df["machine"].notna().any():
        out["machine"] = ", ".join(sorted(set(df["machine"].dropna().astype(str))))
    gpus = {(e.get("gpu") or {}).get("name") for e in df.get("env", [])
            if isinstance(e, dict) and (e.get("gpu") or {}).get("available")}
    if gpus - {None}:
        out["gpu"] = ", ".join(sorted(gpus - {None}))
    return out


# -- asv side --------------------------------------------------------------------------
def git_commit_of(ref: str, repo: str | Path = ".") -> str | None:
    """The full hash `ref` names in `repo`, None when it names no commit."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            cwd=repo, capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def load_asv_side(path: str | Path, label: str | None = None) -> Side:
    """Read one asv result file (format version 2) into a Side."""
    f = read_result_file(path)
    side = Side("asv", f.commit, label or f.commit[:10], f.env)
    for r in f.results:
        ok = r.value is not None
        side.benches[r.key] = Bench(
            key=r.key, unit=r.unit, samples=r.samples, value=r.value, ci=r.ci,
            status="ok" if ok else "skipped",
            reason=None if ok else "no result (skipped or failed in asv)",
            family=r.family, depth=r.depth, batch=r.batch, mode=r.mode,
        )
    return side


def _pick_asv_file(ref: str, commit: str, results_dir: Path, machine: str | None) -> list[Path]:
    files = commit_files(results_dir, commit)
    if machine:
        files = [f for f in files if f.parent.name == machine]
    if not files:
        where = f"{results_dir}" + (f" for machine {machine!r}" if machine else "")
        raise UsageError(
            f"no asv results for {ref!r} (commit {commit[:10]}) in {where}; "
            f"run `asv run {commit[:10]}^!` first"
        )
    return files


# -- resolving A and B -------------------------------------------------------------------
def resolve_side(name: str, *, store=None, asv_results: Path, repo: str | Path = ".",
                 prefer_asv: bool = False):
    """('store', run_id) or ('asv', commit) for a command-line argument."""
    if store is not None and not prefer_asv:
        rid = store.find_run(name)
        if rid is not None:
            return "store", rid
    if _LATEST.fullmatch(name) and store is None:
        raise UsageError(f"{name!r} names a store run, but there is no results database")
    commit = git_commit_of(name, repo)
    if commit is not None:
        return "asv", commit
    where = [f"a run id in {store.path}" if store is not None else None,
             f"a git ref (with asv results in {asv_results})"]
    raise UsageError(f"{name!r} is neither {' nor '.join(w for w in where if w)}")


def load_pair(a: str, b: str, *, store=None, asv_results: Path, repo=".",
              prefer_asv=False, machine: str | None = None) -> tuple[Side, Side]:
    ka, ia = resolve_side(a, store=store, asv_results=asv_results, repo=repo,
                          prefer_asv=prefer_asv)
    kb, ib = resolve_side(b, store=store, asv_results=asv_results, repo=repo,
                          prefer_asv=prefer_asv)
    if ka != kb:
        raise UsageError(
            f"cannot compare a store run with asv results ({a!r} is {ka}, {b!r} is {kb})"
        )
    if ka == "store":
        return load_store_side(store, ia), load_store_side(store, ib)
    fa = _pick_asv_file(a, ia, asv_results, machine)
    fb = _pick_asv_file(b, ib, asv_results, machine)
    pairs = [(x, y) for x in fa for y in fb
             if x.parent == y.parent and x.name[9:] == y.name[9:]]  # same machine and env
    if len(pairs) == 1:
        fa, fb = [pairs[0][0]], [pairs[0][1]]
    elif len(pairs) > 1:
        machines = sorted({x.parent.name for x, _ in pairs})
        raise UsageError(f"{a!r} and {b!r} have asv results on several machines/environments "
                         f"({', '.join(machines)}); pick one with --machine")
    if len(fa) != 1 or len(fb) != 1:
        raise UsageError(f"asv results of {a!r}/{b!r} are ambiguous "
                         f"({len(fa)} and {len(fb)} files); pick one with --machine")
    return (load_asv_side(fa[0], label=f"{a} ({ia[:10]})"),
            load_asv_side(fb[0], label=f"{b} ({ib[:10]})"))


def environment_differences(a: Side, b: Side) -> list[str]:
    """Human-readable list of the environment fields whose values differ."""
    out = []
    for k in sorted(set(a.env) | set(b.env)):
        va, vb = a.env.get(k), b.env.get(k)
        if va != vb:
            out.append(f"{k}: {va} vs {vb}")
    return out
