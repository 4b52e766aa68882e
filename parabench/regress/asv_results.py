"""The one reader of asv result files (format version 2), for `compare` and `history`.

An asv results directory holds `benchmarks.json` (per benchmark: unit, param_names)
and one directory per machine with a file per commit and environment,
`<machine>/<hash8>-<env>.json`. In a result file each benchmark is a row of
`result_columns` (result, params, stats_ci_99_a/b, samples, ...), and a parameterised
benchmark's values follow the product of its parameter lists, whose values asv keeps
as Python literals (`"'vit'"`, `"4"`).

`read_result_file` turns one file into an `AsvFile` (commit, date, machine,
environment) holding one flat `AsvResult` per (benchmark, parameter combination);
`iter_results` yields those records for every file of a directory, skipping what
cannot be read.
"""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..families import LAYER_COUNTED

__all__ = ["AsvFile", "AsvResult", "commit_files", "default_asv_results", "iter_results",
           "read_result_file"]

#: asv's columns when a file does not name them (format version 2).
_DEFAULT_COLUMNS = ["result", "params", "version", "started_at", "duration",
                    "stats_ci_99_a", "stats_ci_99_b", "stats_q_25", "stats_q_75",
                    "stats_number", "stats_repeat", "samples", "profile"]


@dataclass
class AsvResult:
    """One value of one benchmark at one parameter combination, in one result file."""

    benchmark: str  # asv's name, e.g. latency.TransformerLatency.track_latency
    params: str  # "family=vit, depth=4" ("vit, 4" without param_names), "" if none
    unit: str  # from benchmarks.json; "unit" when unknown
    value: float | None  # the median (timing) or tracked value; None: skipped/failed
    samples: list = field(default_factory=list)  # raw samples (asv --record-samples)
    ci: tuple[float, float] | None = None  # asv's 99% interval of the median
    family: str | None = None
    depth: int | None = None
    batch: int | None = None
    mode: str | None = None
    commit: str = ""
    date: int | None = None  # the commit's date, ms since the epoch (asv's "date")
    machine: str | None = None
    env: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The benchmark with its parameters: `name(family=vit, depth=4)`."""
        return f"{self.benchmark}({self.params})" if self.params else self.benchmark


@dataclass
class AsvFile:
    path: Path
    commit: str
    date: int | None
    machine: str | None
    env: dict  # machine, cpu, arch, os, python, env_name: what makes results comparable
    results: list[AsvResult]


def _unquote(v) -> str:
    v = str(v)
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


def _int_or_none(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _at(seq, i):
    if not isinstance(seq, list) or i >= len(seq):
        return None
    return seq[i]


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _point_fields(bench_name: str, names: list, values: list) -> dict:
    """family/depth/batch/mode from the parameters (`model` is 'family:depth')."""
    p = dict(zip(names, values, strict=False))
    fam = p.get("family")
    depth = _int_or_none(p.get("depth"))
    if "model" in p and ":" in p["model"]:
        fam, d = p["model"].rsplit(":", 1)
        depth = _int_or_none(d)
    if fam is None:  # a class that measures one family (ResNetLatency) has it in its name
        fam = next((f for f in LAYER_COUNTED if f in bench_name.lower()), None)
    return {"family": fam, "depth": depth, "batch": _int_or_none(p.get("batch")),
            "mode": p.get("mode")}


def load_benchmarks(results_dir: str | Path) -> dict:
    """benchmarks.json of a results directory, {} when absent or unreadable."""
    try:
        meta = json.loads((Path(results_dir) / "benchmarks.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _records(data: dict, meta: dict, head: dict) -> list[AsvResult]:
    cols = data.get("result_columns") or _DEFAULT_COLUMNS
    out = []
    for name, row in (data.get("results") or {}).items():
        rec = dict(zip(cols, row, strict=False)) if isinstance(row, list) else {}
        info = meta.get(name) if isinstance(meta.get(name), dict) else {}
        unit = info.get("unit") or "unit"
        names = info.get("param_names") or []
        plist = rec.get("params") or []
        combos = list(itertools.product(*plist)) if plist else [()]
        results = rec.get("result")
        if not isinstance(results, list):
            results = [results]
        for i, combo in enumerate(combos):
            values = [_unquote(v) for v in combo]
            params = (", ".join(f"{n}={v}" for n, v in zip(names, values, strict=False))
                      if len(names) == len(values) else ", ".join(values))
            samples = _at(rec.get("samples"), i) or []
            lo, hi = _at(rec.get("stats_ci_99_a"), i), _at(rec.get("stats_ci_99_b"), i)
            out.append(AsvResult(
                benchmark=name, params=params, unit=unit,
                value=_number(results[i] if i < len(results) else None),
                samples=[float(s) for s in samples if s is not None],
                ci=(float(lo), float(hi)) if lo is not None and hi is not None else None,
                **_point_fields(name, names, values), **head,
            ))
    return out


def read_result_file(path: str | Path, *, meta: dict | None = None) -> AsvFile:
    """One result file; `meta` is benchmarks.json (read from the results directory,
    two levels up, when not given). UsageError when the file cannot be read."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read asv result file {path}: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not an asv result file")
    return _file(path, data, load_benchmarks(path.parent.parent) if meta is None else meta)


def _file(path: Path, data: dict, meta: dict) -> AsvFile:
    params = data.get("params") or {}
    machine = params.get("machine") or path.parent.name
    env = {
        "machine": machine,
        "cpu": params.get("cpu"), "arch": params.get("arch"), "os": params.get("os"),
        "python": data.get("python") or params.get("python"),
        "env_name": data.get("env_name"),
    }
    commit, date = str(data.get("commit_hash", "")), data.get("date")
    head = {"commit": commit, "date": date, "machine": machine, "env": env}
    return AsvFile(path, commit, date, machine, env, _records(data, meta, head))


def iter_results(results_dir: str | Path) -> Iterator[AsvResult]:
    """Every result of every machine's files in a results directory; files that are
    unreadable or not results (machine.json, benchmarks.json) are skipped."""
    root = Path(results_dir)
    meta = load_benchmarks(root)
    for f in sorted(root.glob("*/*.json")):
        if f.name == "machine.json":
            continue
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "commit_hash" not in data or "results" not in data:
            continue
        yield from _file(f, data, meta).results


def commit_files(results_dir: str | Path, commit: str) -> list[Path]:
    """Result files of `commit` in every machine directory of `results_dir`."""
    out = []
    for f in sorted(Path(results_dir).glob(f"*/{commit[:8]}-*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and str(data.get("commit_hash", "")).startswith(commit):
            out.append(f)
    return out


def default_asv_results() -> Path | None:
    """asv's results folder of the project in the current directory, if there is one:
    `results_dir` of ./asv.conf.json (asv allows // comments there), else .asv/results."""
    conf = Path("asv.conf.json")
    candidate = Path(".asv/results")
    if conf.is_file():
        try:
            text = "\n".join(line for line in conf.read_text().splitlines()
                             if not line.lstrip().startswith("//"))
            candidate = Path(json.loads(text).get("results_dir", candidate))
        except (ValueError, OSError):
            pass
    return candidate if candidate.is_dir() else None
