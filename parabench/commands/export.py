"""`parabench export`: records as CSV, JSON or Parquet for people who want files."""
from __future__ import annotations

import json
import sys

from ..errors import UsageError
from ..outputs import check_output_file, write_output
from ._options import add_db, add_out, add_runs


def register(sub) -> None:
    p = sub.add_parser("export", help="export records as csv, json or parquet",
                       description="Write the records of some runs (default: all) as a file. "
                       "Raw samples are a JSON list per row in CSV.")
    add_db(p)
    add_runs(p, "run id(s) to export; 'latest' is the newest (default: every run)")
    p.add_argument("--format", choices=("csv", "json", "parquet"), default="csv")
    add_out(p, "output file (default: stdout; parquet needs one)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..store import load

    if args.format == "parquet" and args.out is None:
        raise UsageError("--format parquet needs --out FILE")
    if args.out is not None:
        check_output_file(args.out)
    df = load(args.db, args.runs)
    if args.format == "parquet":
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            df.to_parquet(args.out, index=False)
        except ImportError as e:
            raise UsageError(f"parquet export needs pyarrow: {e}") from None
        except OSError as e:
            raise UsageError(f"--out {args.out}: cannot write ({e.strerror or e})") from None
    else:
        flat = df.assign(
            samples_ms=df["samples_ms"].map(json.dumps), extra=df["extra"].map(json.dumps)
        ) if args.format == "csv" else df
        text = (flat.to_csv(index=False) if args.format == "csv"
                else flat.to_json(orient="records", indent=1))
        if args.out is None:
            sys.stdout.write(text)
        else:
            write_output(args.out, text)
    if args.out is not None:
        print(f"wrote {len(df)} records to {args.out}", file=sys.stderr)
    return 0
