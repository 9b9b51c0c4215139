"""`posebench report`: its arguments and what it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from posebench.errors import InvalidInputError, exit_status


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `report` and its flags to the subcommands."""
    rep = sub.add_parser("report", help="tables, plots, Pareto front and verdict from result stores",
                         description="Merge result stores (results.jsonl or --json lists, from any machines) into "
                                     "OUT/report.md and a self-contained OUT/report.html.")
    rep.add_argument("results", nargs="+", type=Path, help="results.jsonl / JSON files")
    rep.add_argument("--out", type=Path, default=Path("runs/report"), metavar="DIR")
    rep.add_argument("--max-drop", type=float, default=0.01,
                     help="pose mAP50 drop allowed for 'fastest within' (default 0.01)")
    rep.add_argument("--budget-ms", type=float, default=None, help="latency budget for 'most accurate within'")
    rep.add_argument("--evaluation", default=None, help="which evaluation the accuracy axis uses (default: first labelled)")
    rep.add_argument("--thesis", action="store_true", help="add the thesis's published numbers, clearly labelled")
    rep.add_argument("--prices", type=Path, default=None, metavar="YAML",
                     help="machine price table for cost per frame (default: posebench's, report/prices.yaml)")
    rep.add_argument("--metric", default="map50", choices=["precision", "recall", "map50", "map50_95"],
                     help="pose metric of the accuracy axis and the verdict (default: map50, as the thesis)")


def run(args: argparse.Namespace) -> int:
    """Run `posebench report`; returns the exit status."""
    from posebench.report.build import build_report
    from posebench.results import latest_per_trial, merge

    for path in args.results:
        if not path.is_file():
            raise InvalidInputError(f"results file {path} does not exist")
    md, page = build_report(args.results, args.out, max_drop=args.max_drop, budget_ms=args.budget_ms,
                            evaluation=args.evaluation, thesis=args.thesis, metric=args.metric, prices=args.prices)
    print(f"report: {page}  (Markdown: {md})")
    return exit_status(latest_per_trial(merge(args.results)))
