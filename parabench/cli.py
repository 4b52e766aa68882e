"""`python -m parabench SUBCOMMAND`: argument parsing and error funnelling only.

Each subcommand lives in its own module under `parabench.commands` exposing
`register(subparsers)`, which adds a parser whose `func(args) -> int` does the work.
A UsageError anywhere becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys

from . import commands
from .errors import Terminated, UsageError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad flags already; this keeps its message to one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="parabench",
        description="Benchmark and profile Para-Former against serial ViT/ResNet baselines "
        "at increasing depth, store every point, report and compare.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"parabench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`compare ... | head`): nothing more to say, and no
        # traceback; stdout goes to /dev/null so the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        print(f"parabench {args.command}: {'terminated' if terminated else 'interrupted'}",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
