"""Compare two sets of results benchmark by benchmark: ratio, confidence interval, verdict.

A side is either a run in the parabench store (raw samples per point) or the asv
results of one git commit (`.asv/results/<machine>/<hash8>-<env>.json`, raw samples
when asv ran with `--record-samples`, else the median and its 99% interval).

`interleaved_runs` measures two commits *alternately* (two worker processes, one per
checkout, taking turns of a few tens of milliseconds) and stores them as two runs. On
a shared or virtualised machine the speed of the CPU itself drifts by tens of percent
within seconds; runs measured one after the other inherit that drift, interleaved
turns share it. Measured on the 2-core development VM: two back-to-back runs of the
same code differed by up to 2.4x (median 28%), interleaved turns by at most 3%.

Results from different machines or software environments are not comparable: they
are refused (UsageError -> exit 2) unless `allow_mixed`, and then every output format
says so loudly. The result is a plain dict (JSON-able) that `alerts` renders and the
store keeps (`Store.add_comparison`) for the report.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import stats
from .errors import UsageError

__all__ = [
    "WORKTREE",
    "Bench",
    "Side",
    "compare_sides",
    "environment_differences",
    "interleaved_runs",
    "load_asv_side",
    "load_store_side",
    "resolve_side",
    "run_compare",
]

#: Environment fields whose difference makes two sides incomparable.
STORE_ENV_FIELDS = ("machine", "gpu", "torch", "cuda", "threads")
ASV_ENV_FIELDS = ("machine", "cpu", "arch", "os", "python", "env_name")

#: Verdicts that make `compare` exit 1.
REGRESSION_VERDICTS = ("slower", "failed")


@dataclass
class Bench:
    """One comparable point of one side."""

    key: str
    unit: str  # "ms" or "seconds" for latencies; anything else is a tracked value
    samples: list = field(default_factory=list)
    value: float | None = None  # median (latency) or the tracked value
    ci: tuple[float, float] | None = None
    status: str = "ok"  # ok | error | oom | skipped
    reason: str | None = None
    family: str | None = None
    depth: int | None = None
    batch: int | None = None
    mode: str | None = None

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
def _store_run_id(store, name: str) -> str | None:
    """'latest', 'latest~N' (N runs before the newest) or an existing run id."""
    m = re.fullmatch(r"latest(?:~(\d+))?", name)
    if m:
        back = int(m.group(1) or 0)
        ids = [r[0] for r in store._conn.execute(
            "SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC")]
        if len(ids) <= back:
            raise UsageError(f"{name!r}: {store.path} holds only {len(ids)} run(s)")
        return ids[back]
    row = store._conn.execute("SELECT 1 FROM runs WHERE run_id=?", (name,)).fetchone()
    return name if row else None


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
    side = Side("store", run_id, label, side_env, dirty=bool(run.get("git_dirty")),
                interleaved=bool((sweep or {}).get("interleaved")))
    df = store.records_frame([run_id])
    for r in df.itertuples(index=False):
        samples = list(r.samples_ms or [])
        side.benches[r.key] = Bench(
            key=r.key, unit="ms", samples=samples,
            value=float(r.median_ms) if r.median_ms is not None and samples else None,
            status=r.status, reason=r.reason, family=r.family, depth=int(r.depth),
            batch=int(r.batch), mode=r.mode,
        )
    return side


# -- asv side --------------------------------------------------------------------------
def git_commit_of(ref: str, repo: str | Path = ".") -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            cwd=repo, capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def asv_result_files(results_dir: str | Path, commit: str) -> list[Path]:
    """Result files of `commit` in every machine directory (not benchmarks.json)."""
    root = Path(results_dir)
    out = []
    for f in sorted(root.glob(f"*/{commit[:8]}-*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if str(data.get("commit_hash", "")).startswith(commit):
            out.append(f)
    return out


def _unquote(v: str) -> str:
    v = str(v)
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


def _int_or_none(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _asv_point_fields(bench_name: str, names: list, values: list) -> dict:
    p = dict(zip(names, values, strict=False))
    fam = p.get("family")
    depth = _int_or_none(p.get("depth"))
    if "model" in p and ":" in p["model"]:
        fam, d = p["model"].rsplit(":", 1)
        depth = _int_or_none(d)
    if fam is None and "resnet" in bench_name.lower():
        fam = "resnet"
    return {"family": fam, "depth": depth, "batch": _int_or_none(p.get("batch")),
            "mode": p.get("mode")}


def load_asv_side(path: str | Path, label: str | None = None) -> Side:
    """Read one asv result file (format version 2) into a Side."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read asv result file {path}: {e}") from None
    try:
        meta = json.loads((path.parent.parent / "benchmarks.json").read_text())
    except (OSError, ValueError):
        meta = {}
    params = data.get("params") or {}
    env = {
        "machine": params.get("machine") or path.parent.name,
        "cpu": params.get("cpu"), "arch": params.get("arch"), "os": params.get("os"),
        "python": data.get("python") or params.get("python"),
        "env_name": data.get("env_name"),
    }
    commit = str(data.get("commit_hash", ""))
    side = Side("asv", commit, label or commit[:10], env)
    cols = data.get("result_columns") or ["result", "params", "version", "started_at",
                                          "duration", "stats_ci_99_a", "stats_ci_99_b",
                                          "stats_q_25", "stats_q_75", "stats_number",
                                          "stats_repeat", "samples", "profile"]
    for name, row in (data.get("results") or {}).items():
        rec = dict(zip(cols, row, strict=False))
        info = meta.get(name, {}) if isinstance(meta.get(name), dict) else {}
        unit = info.get("unit", "unit")
        names = info.get("param_names") or []
        plist = rec.get("params") or []
        combos = _product(plist) if plist else [()]
        results = rec.get("result")
        if not isinstance(results, list):
            results = [results]
        for i, combo in enumerate(combos):
            values = [_unquote(v) for v in combo]
            key = name if not values else (
                f"{name}({', '.join(f'{n}={v}' for n, v in zip(names, values, strict=False))})"
                if len(names) == len(values) else f"{name}({', '.join(values)})"
            )
            val = results[i] if i < len(results) else None
            samples = _at(rec.get("samples"), i) or []
            lo, hi = _at(rec.get("stats_ci_99_a"), i), _at(rec.get("stats_ci_99_b"), i)
            ok = val is not None and not (isinstance(val, float) and math.isnan(val))
            side.benches[key] = Bench(
                key=key, unit=unit, samples=[float(s) for s in samples if s is not None],
                value=float(val) if ok else None,
                ci=(float(lo), float(hi)) if lo is not None and hi is not None else None,
                status="ok" if ok else "skipped",
                reason=None if ok else "no result (skipped or failed in asv)",
                **_asv_point_fields(name, names, values),
            )
    return side


def _product(lists):
    import itertools

    return list(itertools.product(*lists))


def _at(seq, i):
    if not isinstance(seq, list) or i >= len(seq):
        return None
    return seq[i]


def _pick_asv_file(ref: str, commit: str, results_dir: Path, machine: str | None) -> list[Path]:
    files = asv_result_files(results_dir, commit)
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
        rid = _store_run_id(store, name)
        if rid is not None:
            return "store", rid
    if re.fullmatch(r"latest(~\d+)?", name) and store is None:
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


# -- comparing ---------------------------------------------------------------------------
def environment_differences(a: Side, b: Side) -> list[str]:
    """Human-readable list of environment fields that differ ('' fields are ignored
    when missing on both sides)."""
    out = []
    for k in sorted(set(a.env) | set(b.env)):
        va, vb = a.env.get(k), b.env.get(k)
        if va != vb:
            out.append(f"{k}: {va} vs {vb}")
    return out


def _finite(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _row(key: str, a: Bench | None, b: Bench | None, threshold: float, alpha: float) -> dict:
    ref = b or a
    row = {
        "key": key, "family": ref.family, "depth": ref.depth, "batch": ref.batch,
        "mode": ref.mode, "unit": ref.unit, "ratio": None, "ci_low": None, "ci_high": None,
        "p_value": None, "verdict": None, "baseline": None, "contender": None,
        "n_baseline": len(a.samples) if a else 0, "n_contender": len(b.samples) if b else 0,
        "note": None,
    }
    if a is None or b is None:
        row["verdict"] = "missing"
        row["note"] = f"only in the {'contender' if a is None else 'baseline'}"
        return row
    row["baseline"], row["contender"] = _finite(a.value), _finite(b.value)
    if a.status != "ok" or b.status != "ok":
        if a.status == "ok":
            row["verdict"] = "failed"
            row["note"] = f"contender {b.status}: {b.reason or ''}".strip()
        elif b.status == "ok":
            row["verdict"] = "fixed"
            row["note"] = f"baseline {a.status}: {a.reason or ''}".strip()
        else:
            row["verdict"] = "skipped"
            row["note"] = b.reason or a.reason
        return row
    if not (a.is_latency and b.is_latency):
        if a.value is not None and b.value is not None and a.value != 0:
            row["ratio"] = b.value / a.value
            changed = abs(row["ratio"] - 1.0) > 1e-9
            row["verdict"] = "changed" if changed else "unchanged"
        else:
            row["verdict"] = "inconclusive"
        row["note"] = "tracked value (informational)"
        return row
    if len(a.samples) and len(b.samples):
        c = stats.compare_samples(a.samples, b.samples, threshold=threshold, alpha=alpha)
        row["baseline"], row["contender"] = c.median_a, c.median_b
    else:
        c = stats.compare_summaries(a.value, a.ci, b.value, b.ci, threshold=threshold)
        row["note"] = "no raw samples: medians and their 99% intervals, no test"
    row.update(ratio=_finite(c.ratio), ci_low=_finite(c.ci_low), ci_high=_finite(c.ci_high),
               p_value=_finite(c.p_value), verdict=c.verdict)
    return row


def compare_sides(a: Side, b: Side, *, threshold: float = stats.DEFAULT_THRESHOLD,
                  alpha: float = stats.DEFAULT_ALPHA, allow_mixed: bool = False) -> dict:
    """The comparison as a JSON-able dict: rows per benchmark plus what was compared.
    Raises UsageError when the environments differ and `allow_mixed` is False."""
    diffs = environment_differences(a, b)
    if diffs and not allow_mixed:
        raise UsageError(
            "refusing to compare results from different machines/environments ("
            + "; ".join(diffs) + "); pass --allow-mixed to compare anyway"
        )
    keys = sorted(set(a.benches) | set(b.benches))
    if not keys:
        raise UsageError(f"nothing to compare: {a.label} and {b.label} hold no benchmarks")
    rows = [_row(k, a.benches.get(k), b.benches.get(k), threshold, alpha) for k in keys]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return {
        "baseline": {"kind": a.kind, "id": a.ident, "label": a.label, "env": a.env,
                     "dirty": a.dirty},
        "contender": {"kind": b.kind, "id": b.ident, "label": b.label, "env": b.env,
                      "dirty": b.dirty},
        "measurement": ("asv results" if a.kind == "asv" else
                        "interleaved" if a.interleaved and b.interleaved else "separate runs"),
        "threshold": threshold,
        "alpha": alpha,
        "mixed": bool(diffs),
        "mixed_reasons": diffs,
        "counts": counts,
        "regressed": any(r["verdict"] in REGRESSION_VERDICTS for r in rows),
        "rows": rows,
    }


# -- interleaved measurement of two checkouts ---------------------------------------------
#: Name for the uncommitted working tree as a side of `interleaved_runs`.
WORKTREE = "WORKTREE"

_WORKER = r"""
import json, os, sys

def main():
    chan, sys.stdout = sys.stdout, sys.stderr  # the protocol owns the real stdout
    def reply(**msg):
        chan.write(json.dumps(msg) + "\n")
        chan.flush()
    cpu = os.environ.get("PARABENCH_AB_CPU")
    if cpu and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu)})  # both sides on one core: same neighbours
    import torch
    import parabench
    here = os.path.realpath(os.getcwd())
    if not os.path.realpath(parabench.__file__).startswith(here + os.sep):
        reply(error="parabench imported from %s, not from %s" % (parabench.__file__, here))
        return
    from parabench import catalog
    from parabench.measure.timing import make_input, measure
    from parabench.workloads import make_step, unsupported
    try:
        from parabench.environment import collect
        env = collect()
    except Exception as e:
        env = {"machine": None, "torch": torch.__version__, "error": repr(e)}
    reply(ready=True, env=env)
    step, device = None, "cpu"
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "build":
                step, p = None, msg
                device = p["device"]
                why = unsupported(p["mode"], p["workload"], device)
                if why:
                    reply(skipped=why)
                    continue
                if p.get("threads"):
                    torch.set_num_threads(p["threads"])
                dtype = getattr(torch, p["dtype"])
                torch.manual_seed(0)
                model = catalog.build(p["family"], p["depth"], width=p["width"],
                                      img_size=p["img_size"], device=device, dtype=dtype)
                x = make_input(p["batch"], p["img_size"], device, dtype)
                step = make_step(model, x, mode=p["mode"], workload=p["workload"],
                                 num_classes=catalog.WIDTHS[p["width"]].num_classes)
                warm = measure(step, device=device, warmup=max(1, p["warmup"]),
                               min_samples=3, max_samples=3, min_time_s=0)
                reply(per_call_ms=sorted(warm)[1])
            elif msg["cmd"] == "time":
                n = msg["n"]
                reply(samples=measure(step, device=device, warmup=0, min_samples=n,
                                      max_samples=n, min_time_s=0))
            else:
                return
        except Exception as e:
            oom = "out of memory" in str(e) or type(e).__name__ == "OutOfMemoryError"
            reply(error="%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0][:300]
                                     if str(e).strip() else ""), oom=oom)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()

main()
"""


class _Worker:
    """One checkout's measuring process, driven line by line over pipes."""

    def __init__(self, path: Path, label: str, python: str, logdir: Path, cpu: int | None):
        import os

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(path), str(path / "models")])
        if cpu is not None:
            env["PARABENCH_AB_CPU"] = str(cpu)
        self.label = label
        self.log = open(logdir / f"worker-{label}.log", "w")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [python, "-c", _WORKER], cwd=path, env=env, stdin=subprocess.PIPE,
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


def _checkout(ref: str, repo: Path, dest: Path) -> tuple[Path, str, bool]:
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


def _shared_cpu(sweep) -> int | None:
    """On CPU with one thread, pin both sides to one core (the highest allowed): the
    two vCPUs of a VM can run at different speeds, and the sides take turns anyway."""
    import os

    if sweep.device != "cpu" or sweep.threads != 1 or not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def interleaved_runs(ref_a: str, ref_b: str, sweep, *, store, repo=".", rounds: int = 30,
                     turn_ms: float = 25.0, python: str | None = None, command: str = "",
                     log=None) -> tuple[str, str]:
    """Measure every point of `sweep` on two checkouts in alternating turns; store the
    two sides as two runs and return their ids (baseline, contender)."""
    import sys
    import tempfile

    from .records import Record

    log = log or (lambda msg: print(msg, file=sys.stderr))
    python = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="parabench-ab-") as tmp:
        tmp = Path(tmp)
        trees = [_checkout(r, Path(repo), tmp / f"src{i}") for i, r in enumerate((ref_a, ref_b))]
        labels = [f"{r} ({c[:10]}{'+dirty' if d else ''})"
                  for r, (_, c, d) in zip((ref_a, ref_b), trees, strict=True)]
        cpu = _shared_cpu(sweep)
        workers = [_Worker(t[0], f"side{i}", python, tmp, cpu) for i, t in enumerate(trees)]
        try:
            hello = [w.ask() for w in workers]
            for h, lab in zip(hello, labels, strict=True):
                if "error" in h:
                    raise UsageError(f"cannot measure {lab}: {h['error']}")
            run_ids = []
            for (_, commit, dirty), h, ref, other in zip(trees, hello, (ref_a, ref_b),
                                                         (ref_b, ref_a), strict=True):
                env = dict(h["env"])
                env["git"] = {"commit": commit or None, "dirty": dirty}
                run_ids.append(store.start_run(
                    sweep={**sweep.to_dict(), "interleaved": {"rounds": rounds,
                                                              "turn_ms": turn_ms,
                                                              "with": other}},
                    preset=f"interleaved:{sweep.name}", command=command or f"ab {ref}",
                    env=env))
            points = sweep.points()
            for k, point in enumerate(points, 1):
                _measure_pair(point, sweep, workers, store, run_ids, rounds, turn_ms, Record)
                log(f"[{k}/{len(points)}] {point.key}")
            for rid in run_ids:
                store.finish_run(rid, "finished")
            return run_ids[0], run_ids[1]
        finally:
            for w in workers:
                w.close()


def _measure_pair(point, sweep, workers, store, run_ids, rounds, turn_ms, Record) -> None:
    spec = dict(cmd="build", family=point.family, depth=point.depth, batch=point.batch,
                dtype=point.dtype, mode=point.mode, workload=point.workload,
                device=sweep.device, width=sweep.width, img_size=sweep.img_size,
                threads=sweep.threads, warmup=sweep.warmup)
    built = [w.ask(**spec) for w in workers]
    recs = [Record(key=point.key, family=point.family, depth=point.depth, batch=point.batch,
                   dtype=point.dtype, mode=point.mode, workload=point.workload,
                   device=sweep.device, img_size=sweep.img_size, width=sweep.width)
            for _ in workers]
    ok = True
    for rec, b in zip(recs, built, strict=True):
        if "skipped" in b:
            rec.status, rec.reason, ok = "skipped", b["skipped"], False
        elif "error" in b:
            rec.status, rec.reason, ok = ("oom" if b.get("oom") else "error"), b["error"], False
    if ok:
        slowest = max(b["per_call_ms"] for b in built)
        n = max(1, int(turn_ms / max(slowest, 1e-3)))
        for r in range(rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)  # neither side always goes first
            for i in order:
                got = workers[i].ask(cmd="time", n=n)
                if "error" in got:
                    recs[i].status, recs[i].reason = "error", got["error"]
                    break
                recs[i].samples_ms.extend(got["samples"])
    for rid, rec in zip(run_ids, recs, strict=True):
        if rec.status != "ok":
            rec.samples_ms = []
        store.add_record(rid, rec)


def run_compare(a: str, b: str, *, db=None, asv_results=None, repo=".",
                threshold: float = stats.DEFAULT_THRESHOLD, alpha: float = stats.DEFAULT_ALPHA,
                allow_mixed: bool = False, machine: str | None = None, save: bool = True) -> dict:
    """Resolve A and B (store runs first, then git refs with asv results), compare, and
    keep the comparison in the store when both are store runs."""
    from .store import Store, default_db_path

    prefer_asv = asv_results is not None
    asv_dir = Path(asv_results) if asv_results is not None else Path(".asv") / "results"
    db_path = Path(db) if db is not None else default_db_path()
    store = None
    if not prefer_asv and db_path.exists():
        store = Store(db_path, create=False)
    elif db is not None and not prefer_asv:
        raise UsageError(f"no results database at {db_path}")
    try:
        sa, sb = load_pair(a, b, store=store, asv_results=asv_dir, repo=repo,
                           prefer_asv=prefer_asv, machine=machine)
        result = compare_sides(sa, sb, threshold=threshold, alpha=alpha,
                               allow_mixed=allow_mixed)
        if save and store is not None and sa.kind == "store":
            store.add_comparison(sa.ident, sb.ident, result)
        return result
    finally:
        if store is not None:
            store.close()
