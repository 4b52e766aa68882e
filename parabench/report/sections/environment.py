"""Where the numbers come from: one table per run, its recorded environment flattened."""
from __future__ import annotations

import json

from ..content import Missing, Section, Table, fmt
from .context import HOW, Context, short
from .load import load_table

__all__ = ["environment_section"]


def environment_section(ctx: Context) -> Section:
    s = Section("environment", "Environment")
    for run in ctx.runs:
        commit = run.get("git_commit") or "unknown"
        dirty = run.get("git_dirty")
        fields = {
            "run": run.get("run_id"), "status": run.get("status"),
            "started": run.get("created_at"), "finished": run.get("finished_at"),
            "preset": run.get("preset"), "command": run.get("command"),
            "git commit": f"{commit}{' (dirty tree)' if dirty else ''}",
            "machine": run.get("machine"),
        }
        try:
            env = json.loads(run.get("env_json") or "{}")
        except (TypeError, ValueError):
            env = {}
        for k, v in _flatten(env).items():
            if k not in ("git.commit", "git.dirty", "machine"):
                fields[k] = v
        rows = [[k, short(fmt(v))] for k, v in fields.items()]
        s.tables.append(Table(f"Run {run.get('run_id')}", ["field", "value"], rows))
        if not env:
            s.missing.append(Missing(f"run {run.get('run_id')} recorded no environment",
                                     HOW["run"]))
    load = load_table(ctx.records)
    if load is not None:
        s.tables.append(load)
    machines = _measured_on(ctx.records)
    if machines:
        s.tables.append(Table("Measured on (the worker of each record)",
                              ["machine", "points", "torch", "CUDA", "GPU"], machines))
    return s


def _measured_on(records) -> list[list]:
    """One row per machine that measured records, from the records' own environments."""
    if records.empty or "machine" not in records:
        return []
    rows = []
    for machine, g in records.groupby(records["machine"].fillna("?"), sort=True):
        envs = [e for e in g.get("env", []) if isinstance(e, dict) and e]
        first = envs[0] if envs else {}
        gpu = first.get("gpu") or {}
        rows.append([short(str(machine)), str(len(g)), fmt(first.get("torch")),
                     fmt(first.get("cuda")), fmt(gpu.get("name") if gpu.get("available") else None)])
    return rows


def _flatten(d, prefix="") -> dict:
    out = {}
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (list, dict)):
            out[f"{prefix}{k}"] = json.dumps(v, default=str)
        else:
            out[f"{prefix}{k}"] = v
    return out
