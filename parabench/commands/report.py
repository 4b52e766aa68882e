"""`python -m parabench report`: one page that answers "is it flat in depth, where does
that stop, and why" from a results database."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write an HTML + Markdown report (figures, CSV) from stored results",
        description="Write index.html (self-contained), report.md, figures and CSV for one "
        "or more runs of the results database.",
    )
    p.add_argument("--db", type=Path, default=None,
                   help="results database (default: $PARABENCH_DB or results/parabench.db)")
    p.add_argument("--run", nargs="+", metavar="ID", default=None,
                   help="run id(s) to report ('latest' names the newest; default: latest)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: reports/<run id>, or reports/latest)")
    p.add_argument("--asv-results", type=Path, default=None, metavar="DIR",
                   help="asv results folder for the history section (default: results_dir "
                   "of ./asv.conf.json or .asv/results, when present)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ..report import build_report
    from ..store import default_db_path

    db = args.db if args.db is not None else default_db_path()
    res = build_report(db, args.run, args.out, args.asv_results)
    n_missing = sum(1 for s in res.sections if s.missing)
    print(f"wrote {res.index} (+ report.md, data.csv, {len(res.figures)} figures in "
          f"{res.out / 'figures'}) in {res.seconds:.1f} s")
    if n_missing:
        print(f"{n_missing} section(s) note missing data; the page says how to get it")
    return 0
