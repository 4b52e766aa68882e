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
    """The bench run's records (`parabench export --format csv`), [] when absent."""
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error):
        return []


#: the heading of the report section that holds the bench's ratios
TURNS_HEADING = "## Families timed in turns"


def _turns_table(report_dir: Path) -> list[list[str]]:
    """The rows of the bench report's table of families timed in turns (header first),
    cells stripped; [] when the report or the table is missing."""
    try:
        text = (report_dir / "report.md").read_text(errors="replace")
    except OSError:
        return []
    _, found, rest = text.partition(TURNS_HEADING)
    if not found:
        return []
    section = rest.split("\n## ", 1)[0]
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")]
            for ln in section.splitlines() if ln.startswith("|")]
    return [r for r in rows if not all(set(c) <= set("-:") for c in r)]


def read_bench_table(report_dir: Path) -> str:
    rows = _turns_table(report_dir)
    if not rows:
        return "  (no bench table: see bench.log in the tarball)"
    w = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in rows)


def _turn_ratio(report_dir: Path, cell: str, column: str) -> str:
    """One ratio of the turns table: the row whose cell starts with `cell`."""
    rows = _turns_table(report_dir)
    if not rows or column not in rows[0]:
        return "-"
    j = rows[0].index(column)
    row = next((r for r in rows[1:] if r[0].startswith(cell)), None)
    return row[j] if row and j < len(row) else "-"


def _bench_ms(rows, mode, batch, depth, family):
    for r in rows:
        if (r["mode"], r["batch"], r["depth"], r["family"]) == (mode, str(batch), str(depth),
                                                                family) \
                and r["status"] == "ok" and r["median_ms"]:
            return float(r["median_ms"])
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
    for fam in ("paraformer-fused", "paraformer-serial", "vit"):
        ms = [_bench_ms(bench, mode, 1, k, fam) for k in KS]
        growth = ms[-1] / ms[0] if ms[0] and ms[-1] else None
        out.append(f"- {fam} batch 1 {mode}, K/depth {'/'.join(map(str, KS))}: "
                   + " / ".join(_fmt(m, ".3f") for m in ms)
                   + f" ms; depth {KS[-1]} over depth 1: {_fmt(growth, '.2f', 'x')}")
    cell = f"d{KS[-1]} b{big} "
    for column in ("fused / vit", "least-work / vit", "fused / loop", "vit / loop"):
        out.append(f"- {column} at batch {big}, depth {KS[-1]}: "
                   f"{_turn_ratio(work / 'bench-report', cell, column)}")
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
