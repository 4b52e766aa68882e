"""The report: DataFrames in, index.html + report.md + figures + CSV out.

`build_report(db, run_ids, out)` does it all; the modules split the work: `sections`
decides what to say, `figures` draws, `html` and `markdown` write the two formats.
"""
from .build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
