"""`posebench env`: its arguments and what it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from posebench.errors import PosebenchError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `env` and its flags to the subcommands."""
    env = sub.add_parser("env", help="show this machine's fingerprint and which runtimes are installed")
    env.add_argument("--json", type=Path, metavar="PATH", help="also write the fingerprint here")


def run(args: argparse.Namespace) -> int:
    """Run `posebench env`; returns the exit status."""
    import json

    from posebench.machine.environment import fingerprint
    from posebench.runtimes import REGISTRY, backend_class

    env = fingerprint()
    print(json.dumps(env, indent=2))
    for name in REGISTRY:
        try:
            backend_class(name).check_installed()
            print(f"{name:12s} installed")
        except PosebenchError as exc:
            print(f"{name:12s} {exc}")
    if args.json:
        from posebench.results import write_json

        write_json(args.json, [env])
    return 0
