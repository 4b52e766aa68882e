"""Where the numbers come from: one table per run, its recorded environment flattened."""
from __future__ import annotations

import json

from ..content import Missing, Section, Table, fmt
from .context import HOW, Context, short

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
    return s


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
