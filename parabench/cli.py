"""`python -m parabench SUBCOMMAND`: argument parsing and error funnelling only.

Each subcommand lives in its own module under `parabench.commands` exposing
`register(subparsers)`, which adds a parser whose `func(args) -> int` does the work.
A UsageError anywhere becomes one line on stderr and exit code 2. This is also the one
place where output errors are handled: a reader that went away exits 141 silently, a
full disk or an unwritable terminal is one line and exit 1, a closed stdout is refused
up front (the command's output would be thrown away), never a traceback.
"""
from __future__ import annotations

import argparse
import errno
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


#: errnos that mean "the reader of our output went away"
_GONE = (errno.EPIPE, errno.ECONNRESET)


def _fill_closed_fds() -> bool:
    """Put /dev/null on a closed fd 0, 1 or 2, so that no file parabench opens (the
    database!) becomes stdout by accident. True when stdout was closed."""
    closed = False
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            closed |= fd == 1
    return closed


def _say(text: str) -> None:
    """One line on stderr; an unwritable stderr leaves only the exit status to tell."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass


def _quiet_stdout() -> None:
    """stdout onto /dev/null, so the interpreter's final flush cannot fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    stdout_closed = _fill_closed_fds() or sys.stdout is None
    args = build_parser().parse_args(argv)
    if stdout_closed:
        _say(f"parabench {args.command}: error: standard output is closed; redirect it "
             "to a file or to /dev/null")
        return 2
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit: a write that fails must be reported
        return rc
    except UsageError as e:
        _say(f"parabench {args.command}: error: {e}")
        return 2
    except OSError as e:
        _quiet_stdout()
        if isinstance(e, BrokenPipeError) or e.errno in _GONE:
            # The reader went away (`compare ... | head`): nothing more to say.
            return 128 + signal.SIGPIPE
        _say(f"parabench {args.command}: error: {e.filename or 'output'}: {e.strerror or e}")
        return 1
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        _say(f"parabench {args.command}: {'terminated' if terminated else 'interrupted'}")
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
