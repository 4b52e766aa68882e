"""Build a report folder from a results database: load, analyse, draw, write.

    out/index.html   self-contained page (figures embedded)
    out/report.md    the same content in Markdown, figures linked
    out/figures/     the PNG figures
    out/data.csv     the records used (raw samples as a JSON string per row)
    out/fits.csv     the depth-scaling fit per regime
    out/ratios.csv   parallel / serial latency at equal depth
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import UsageError
from ..outputs import prepare_output_dir, safe_name
from ..regress.asv_results import default_asv_results
from ..store import Store
from .content import Section
from .html import render_html
from .markdown import render_markdown
from .sections import Context, all_sections, files_section

__all__ = ["ReportResult", "build_report"]


@dataclass
class ReportResult:
    out: Path
    index: Path
    markdown: Path
    data_csv: Path
    figures: list[Path] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    seconds: float = 0.0


def build_report(db=None, run_ids=None, out=None, asv_results=None) -> ReportResult:
    """Write the report for `run_ids` (default: the latest run) of database `db` into
    `out` (default: reports/<run id>, or reports/latest when no run was named)."""
    t0 = time.perf_counter()
    with Store(db, create=False, readonly=True) as store:
        if run_ids:
            ids = store.resolve_runs(run_ids)
        else:
            latest = store.latest_run_id()
            if latest is None:
                raise UsageError(f"{store.path} holds no runs yet; run "
                                 "`python -m parabench run --preset quick` first")
            ids = [latest]
        records = store.records_frame(ids)
        runs = [store.run(i) for i in ids]
        comparison = store.latest_comparison()
        db_path = store.path
    if out is None:  # a run id becomes a folder name only if it is a safe one
        out = Path("reports") / safe_name("+".join(run_ids) if run_ids else "latest")
    out = prepare_output_dir(Path(out))
    figdir = prepare_output_dir(out / "figures")
    for old in figdir.glob("*.png"):  # figures of an earlier report would mislead
        old.unlink()
    if asv_results is None:
        asv_results = default_asv_results()  # None when this project has none

    ctx = Context(records=records, runs=runs, figdir=figdir, out=out,
                  comparison=comparison, asv_results=Path(asv_results) if asv_results else None,
                  db=db_path)
    sections = all_sections(ctx)

    data_csv = out / "data.csv"
    frame = records.copy()
    frame["samples_ms"] = frame["samples_ms"].map(json.dumps)
    frame["extra"] = frame["extra"].map(lambda d: json.dumps(d, default=str))
    frame.to_csv(data_csv, index=False)
    ctx.fits.to_csv(out / "fits.csv", index=False)
    ctx.ratios.to_csv(out / "ratios.csv", index=False)

    figures = [f.path for s in sections for f in s.figures]
    written = [("index.html", "this page"), ("report.md", "the same report in Markdown"),
               ("data.csv", "the records used, raw samples as JSON"),
               ("fits.csv", "depth-scaling fit per regime"),
               ("ratios.csv", "parallel / serial latency at equal depth")]
    written += [(f.rel, f.caption) for s in sections for f in s.figures]
    sections.append(files_section(ctx, written))

    n_ok = int((records["status"] == "ok").sum()) if not records.empty else 0
    presets = sorted({str(r.get("preset")) for r in runs if r.get("preset")})
    title = "parabench report"
    subtitle = (f"run{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
                + (f" · preset {', '.join(presets)}" if presets else "")
                + f" · {len(records)} points, {n_ok} measured · database {db_path}")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    from .. import __version__

    footer = f"parabench {__version__} · generated {now}"
    index = out / "index.html"
    index.write_text(render_html(sections, title=title, subtitle=subtitle, footer=footer),
                     encoding="utf-8")
    md = out / "report.md"
    md.write_text(render_markdown(sections, title=title, subtitle=subtitle, footer=footer),
                  encoding="utf-8")
    return ReportResult(out, index, md, data_csv, figures, sections,
                        time.perf_counter() - t0)
