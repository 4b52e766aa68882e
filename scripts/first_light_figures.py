"""The figures first_light.py prints: the table of parts, the bench table and the headline
figures the claim turns on. Standard library only (csv, json), and never raises on a
missing or partial file: a part that failed leaves its figures as "-" with the reason.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

__all__ = ["headline", "parts_table", "read_bench_table"]

KS = (1, 8, 48)


def parts_table(parts) -> str:
    rows = [("part", "rc", "seconds", "note")]
    for p in parts:
        rows.append((p.name, "-" if p.rc is None else str(p.rc),
                     "-" if p.rc is None else f"{p.seconds:.0f}", p.note))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]}".rstrip()
                     for r in rows)


def _bench_rows(path: Path) -> list[dict]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error):
        return []


def read_bench_table(path: Path) -> str:
    rows = _bench_rows(path)
    if not rows:
        return "  (no bench rows: see bench.log in the tarball)"
    head = ("mode", "batch", "K", "exec", "status", "ms", "/ loop", "/ twin", "/ vit",
            "err vs loop")
    lines = [head]
    for r in rows:
        lines.append((r["mode"], r["batch"], r["K"], r["exec"], r["status"], r["ms"] or "-",
                      *(_ratio(r, ref) for ref in ("loop", "twin", "vit")),
                      r.get("max_rel_err_vs_loop") or "-"))
    w = [max(len(str(x[i])) for x in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).rjust(w[i]) for i, c in enumerate(x)) for x in lines)


def _ratio(row: dict, ref: str) -> str:
    med = row.get(f"ratio_{ref}_median")
    if not med:
        return "-"
    return f"{float(med):.2f} [{float(row[f'ratio_{ref}_min']):.2f}-" \
           f"{float(row[f'ratio_{ref}_max']):.2f}]"


def _bench_ms(rows, mode, batch, k, exec_):
    for r in rows:
        if (r["mode"], r["batch"], r["K"], r["exec"]) == (mode, str(batch), str(k), exec_) \
                and r["status"] == "ok" and r["ms"]:
            return float(r["ms"])
    return None


def _records(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return []


def _fmt(v, spec=".3g", unit=""):
    return "-" if v is None else f"{v:{spec}}{unit}"


def headline(work: Path, device: str, parts) -> list[str]:
    """The figures the closing note asks for, each with where it came from."""
    gpu = device == "cuda"
    mode = "graph" if gpu else "eager"
    big = 256 if gpu else 8
    bench = _bench_rows(work / "bench.csv")
    out = []
    for exec_ in ("fused", "twin", "vit"):
        ms = [_bench_ms(bench, mode, 1, k, exec_) for k in KS]
        growth = ms[-1] / ms[0] if ms[0] and ms[-1] else None
        out.append(f"- {exec_:6} batch 1 {mode}, K/depth {'/'.join(map(str, KS))}: "
                   + " / ".join(_fmt(m, ".3f") for m in ms)
                   + f" ms; depth {KS[-1]} over depth 1: {_fmt(growth, '.2f', 'x')}")
    for exec_ in ("fused", "least-work", "loop"):
        row = next((r for r in bench if (r["mode"], r["batch"], r["K"], r["exec"]) ==
                    (mode, str(big), str(KS[-1]), exec_)), None)
        out.append(f"- {exec_} / ViT-S at batch {big}, depth {KS[-1]}: "
                   f"{_ratio(row, 'vit') if row else '-'}")
    errs = [r.get("max_rel_err_vs_loop") for r in bench if r["exec"] == "fused"]
    out.append(f"- fused max relative error against loop: {max(errs, default='-')}")
    sweep = _records(work / "sweep.json")
    for fam in ("paraformer-fused", "paraformer-serial", "vit"):
        e = [r["energy_j_per_image"] for r in sweep if r["family"] == fam and r["depth"] == 48
             and r["batch"] == big and r["energy_j_per_image"] is not None]
        out.append(f"- {fam} depth 48 batch {big}: {_fmt(e[0] if e else None, '.4g')} J/image")
    clocks = [r["extra"].get("sm_clock_mhz_start") for r in sweep
              if isinstance(r.get("extra"), dict) and r["extra"].get("sm_clock_mhz_start")]
    statuses = {}
    for r in sweep:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    out.append(f"- sweep rows by status: {statuses or '-'}; SM clock at timing start: "
               + (f"{min(clocks)}-{max(clocks)} MHz" if clocks else "-"))
    kern = _records(work / "kernels.json")
    for fam in ("paraformer-fused", "paraformer-serial", "vit"):
        per = {r["depth"]: r["kernels_per_forward"] for r in kern if r["family"] == fam}
        unit = "kernels" if gpu else "ops (CPU: profiler ops, not kernels)"
        out.append(f"- {fam} {unit} per forward at depth {'/'.join(map(str, KS))}: "
                   + " / ".join(_fmt(per.get(k), ".0f") for k in KS))
    out.append(f"- gpu tests: {_pytest_line(work / 'tests.log')}")
    return out


def _pytest_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "-"
    done = [ln for ln in lines if re.search(r"\d+ (passed|failed|skipped|error)", ln)]
    return done[-1].strip("= ") if done else "-"
