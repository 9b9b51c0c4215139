"""The posebench command line: one parser whose subcommands live in `posebench.commands`, one module each."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import NoReturn

from posebench import __version__
from posebench.errors import EXIT_INPUT, PosebenchError

COMMANDS = ("bench", "val", "compress", "study", "worker", "report", "tune", "stream", "models", "env")  # the order --help lists


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage on a bad flag or value (the full usage block is what --help is for)."""

    def error(self, message: str) -> NoReturn:
        positionals = " ".join(a.metavar or a.dest for a in self._positionals._group_actions)
        self.exit(2, f"usage: {self.prog} [options] {positionals}".rstrip() + f"  ({self.prog} --help)\n"
                     f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The `posebench` parser; each subcommand's flags come from its module's `add_parser`."""
    parser = _Parser(
        prog="posebench",
        description="Compress, export, run, validate and time Ultralytics pose models on every runtime.")
    parser.add_argument("--version", action="version", version=f"posebench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"posebench.commands.{name}").add_parser(sub)
    return parser


def _terminate_like_interrupt() -> None:
    """SIGTERM (kill, a CI timeout) ends posebench as Ctrl-C does: the measurement child it waits for is killed
    too (subprocess.run kills it on the way out), instead of running on, orphaned, and disturbing whatever the
    machine times next."""
    import signal
    import threading

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `posebench` command; returns the exit status."""
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    _terminate_like_interrupt()
    args = build_parser().parse_args(argv)
    try:
        return importlib.import_module(f"posebench.commands.{args.command}").run(args)
    except PosebenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted: records measured so far are in the results store", file=sys.stderr)
        return 130
