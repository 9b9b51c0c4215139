"""`posebench worker`: its arguments and what it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from posebench.errors import InvalidInputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `worker` and its flags to the subcommands."""
    work = sub.add_parser("worker", help="join a Dask cluster as a posebench worker (for study --executor dask)",
                          description="One task at a time; declares this machine's hardware kinds (avx2, "
                                      "avx512_vnni, cuda...) so latency trials of a study's `targets` land here.")
    work.add_argument("address", nargs="?", default=None, help="scheduler address, tcp://host:8786")
    work.add_argument("--scheduler-file", type=Path, default=None, help="Dask scheduler file instead of ADDRESS")
    work.add_argument("--kind", action="append", default=None, metavar="KIND",
                      help="hardware kind this worker counts as (repeatable; default: detected)")
    work.add_argument("--node", default=None, help="machine name (default: host name); one task per node at a time")
    work.add_argument("--name", default=None, help="worker name shown by the scheduler")


def run(args: argparse.Namespace) -> int:
    """Run `posebench worker`; returns the exit status."""
    from posebench.cluster import serve_worker

    if not args.address and not args.scheduler_file:
        raise InvalidInputError("posebench worker needs the scheduler's ADDRESS (tcp://host:8786) or --scheduler-file")
    try:
        serve_worker(args.address, scheduler_file=args.scheduler_file, kinds=args.kind, node=args.node, name=args.name)
    except KeyboardInterrupt:
        return 130
    return 0
