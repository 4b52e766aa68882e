"""Families timed in turns: for runs whose families were arms measured alternately,
cell by cell (an interleaved schedule, as the fused-goals preset runs), each family's
latency over the references' (families.REFERENCES: the authors' loop, timm's ViT).

Why a table of its own: these ratios are what the fused execution's goals are stated
in, and only turns make them trustworthy on a machine whose speed drifts (the ranking
of fused and loop flipped with the load). Each ratio is the median per-round ratio
with its 95% interval, built over the sets of processes when there were several
(regress.stats.compare_samples, the rule `compare` uses), so a process's lifetime bias
widens the interval instead of hiding in the figure.
"""
from __future__ import annotations

import pandas as pd

from ...families import REFERENCES, get
from ...regress.stats import compare_samples
from ..content import Missing, Section, Table, fmt
from .context import Context, family_sorted
from .load import BUSY_MARK, BUSY_NOTE, is_busy

__all__ = ["turns_section", "turns_tables"]

_CELL = ["depth", "batch", "dtype", "mode", "workload"]


def _short(family: str) -> str:
    return family.removeprefix("paraformer-")


def _ratio(ref, fam) -> str:
    """'0.93 [0.88–0.99]' for fam over ref (both records of one cell), '–' without."""
    extra = fam.extra if isinstance(fam.extra, dict) else {}
    turn = extra.get("turn_size")
    if not turn or not ref.samples_ms or not fam.samples_ms:
        return "–"
    rounds = extra.get("rounds_per_process")
    sets = len(fam.samples_ms) // (turn * rounds) if rounds else 1
    c = compare_samples(ref.samples_ms, fam.samples_ms, block_a=turn, block_b=turn,
                        paired=True, group=rounds if sets > 1 else None)
    if pd.isna(c.ratio):
        return "–"
    return f"{c.ratio:.2f} [{fmt(c.ci_low)}–{fmt(c.ci_high)}]"


def _pairs(families: list[str]) -> list[tuple[str, str]]:
    """(family, reference) for every family over every reference measured beside it,
    without the reverse of a pair already shown."""
    out = []
    for ref in (r for r in REFERENCES if r in families):
        for fam in families:
            if fam != ref and (ref, fam) not in out:
                out.append((fam, ref))
    return out


def _run_table(run_id: str, g: pd.DataFrame) -> Table | None:
    # only families that took turns with each other: the two sides of `compare
    # --interleave` took turns, but a side's families were measured at different times
    turned = g["extra"].map(lambda e: isinstance(e, dict) and bool(e.get("family_arms")))
    ok = g[turned & (g["status"] == "ok")]
    families = list(family_sorted(ok.drop_duplicates("family"))["family"])
    pairs = _pairs(families)
    if not pairs:
        return None
    rows = []
    for cell, c in ok.groupby(_CELL, sort=True):
        by = {r.family: r for r in c.itertuples(index=False)}
        # each grouped execution's own G (fused and least-work size theirs differently;
        # a serial twin's one branch says nothing)
        groups = [f"{_short(f)} {by[f].extra['fused_group']}" for f in families
                  if f in by and by[f].extra.get("fused_group") and get(f).serial_twins]
        busy = any(is_busy(r.busy) for r in by.values())
        rows.append([f"d{cell[0]} b{cell[1]} {cell[2]} {cell[3]}" + (f" {BUSY_MARK}" if busy
                                                                      else ""),
                     ", ".join(groups) or "–"]
                    + [fmt(by[f].median_ms) if f in by else "–" for f in families]
                    + [_ratio(by[r], by[f]) if f in by and r in by else "–" for f, r in pairs])
    return Table(f"Run {run_id}: families timed in turns (ms per call; ratios: median per "
                 "round [95% interval])",
                 ["cell", "fused group"] + [f"{_short(f)} ms" for f in families]
                 + [f"{_short(f)} / {_short(r)}" for f, r in pairs], rows, BUSY_NOTE)


def turns_tables(records: pd.DataFrame) -> list[Table]:
    """One table per run whose families took turns (none when no run did)."""
    if records.empty or "extra" not in records:
        return []
    tables = [_run_table(str(run), g) for run, g in records.groupby("run_id", sort=True)
              if g["family"].nunique() > 1]
    return [t for t in tables if t is not None]


def turns_section(ctx: Context) -> Section:
    s = Section("turns", "Families timed in turns")
    tables = turns_tables(ctx.records)
    if not tables:
        s.missing.append(Missing("no run timed its families in turns",
                                 "python -m parabench run --preset fused-goals"))
        return s
    s.lead.append("Each family's latency over the references', measured alternately cell "
                  "by cell, so a drift of the machine's speed hits every family alike. "
                  "Below 1: faster than the reference.")
    s.tables.extend(tables)
    s.notes.append("A ratio is the median of per-round ratios (one turn of each family per "
                   "round); its interval is built over the sets of measuring processes "
                   "when there were several, otherwise over rounds. 'fused group': how "
                   "many branches each grouped execution ran at once (paraformer.groups).")
    return s
