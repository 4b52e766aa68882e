"""`python -m parabench report`: one page that answers "is it flat in depth, where does
that stop, and why" from a results database."""
from __future__ import annotations

from pathlib import Path

from ._options import add_db, add_out, add_runs


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML + Markdown report (figures, CSV) from stored results",
        description="Write index.html (self-contained), report.md, figures and CSV for one "
        "or more runs of the results database.",
    )
    add_db(p)
    add_runs(p, "run id to report, repeatable (--run A --run B); 'latest' is the newest, "
             "'latest~1' the one before (default: latest)")
    add_out(p, "output folder (default: reports/<run id>, or reports/latest)")
    p.add_argument("--asv-results", type=Path, default=None, metavar="DIR",
                   help="asv results folder for the history section (default: results_dir "
                   "of ./asv.conf.json or .asv/results, when present)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..errors import UsageError
    from ..outputs import prepare_output_dir
    from ..report import build_report
    from ..store import default_db_path

    db = args.db if args.db is not None else default_db_path()
    if args.out is not None:
        prepare_output_dir(args.out)
    try:
        res = build_report(db, args.runs, args.out, args.asv_results)
    except OSError as e:
        raise UsageError(f"cannot write the report: {e.strerror or e} "
                         f"({e.filename or args.out})") from None
    n_missing = sum(1 for s in res.sections if s.missing)
    print(f"wrote {res.index} (+ report.md, data.csv, {len(res.figures)} figures in "
          f"{res.out / 'figures'}) in {res.seconds:.1f} s")
    if n_missing:
        print(f"{n_missing} section(s) note missing data; the page says how to get it")
    return 0
