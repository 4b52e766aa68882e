"""Arguments shared by several subcommands."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_db(parser) -> None:
    parser.add_argument(
        "--db", type=Path, default=None,
        help="results database (default: $PARABENCH_DB or results/parabench.db)",
    )


def add_runs(parser, help_text="run id(s) to use; 'latest' is the newest (default: latest)") -> None:
    parser.add_argument("--run", dest="runs", action="append", metavar="ID", help=help_text)


def int_list(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4); argparse shows the error as one line."""
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None


def str_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())
