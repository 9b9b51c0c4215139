"""`posebench study`: its arguments and what it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posebench.commands.args import progress_bar
from posebench.errors import EXIT_NONE_SKIPPED, InvalidInputError, exit_status


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `study` and its flags to the subcommands."""
    study = sub.add_parser("study", help="run a study file (models x variants x runtimes x threads), resumable",
                           description="Expand STUDY.yaml into trials, build each variant once, time and validate "
                                       "every runtime; finished trials are skipped on re-run. Ends with a report.")
    study.add_argument("study", type=Path, help="study YAML (see studies/)")
    study.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default: runs/<study>)")
    study.add_argument("--max-drop", type=float, default=0.01, help="accuracy drop allowed by the verdict")
    study.add_argument("--retry-failed", action="store_true", help="run trials recorded as errors again")
    study.add_argument("--budget-ms", type=float, default=None, help="latency budget for the verdict")
    study.add_argument("--metric", default="map50", choices=["precision", "recall", "map50", "map50_95"],
                       help="pose metric of the report's accuracy axis (default: map50)")
    study.add_argument("--prices", type=Path, default=None, metavar="YAML",
                       help="machine price table for the report's cost per frame (default: posebench's)")
    study.add_argument("--executor", default="local", choices=["local", "dask"],
                       help="local: this machine, no server (default); dask: a Dask cluster (--cluster, or a local "
                            "one), latency trials placed on workers of their `targets` kind, one task per machine")
    study.add_argument("--cluster", default=None, metavar="ADDRESS", help="Dask scheduler (tcp://host:8786)")
    study.add_argument("--scheduler-file", type=Path, default=None, help="Dask scheduler file instead of --cluster")
    study.add_argument("--orphan-seconds", type=float, default=120.0,
                       help="with dask: a trial whose hardware kind has no worker for this long is recorded as failed")


def run(args: argparse.Namespace) -> int:
    """Run `posebench study`; returns the exit status."""
    from posebench.machine.environment import fingerprint
    from posebench.report.build import build_report
    from posebench.results import latest_per_trial, merge
    from posebench.study import Study, run_study, targets_elsewhere

    study = Study.load(args.study)
    out = args.out or Path("runs") / study.name
    for line in study.skipped:
        print(f"note: {line}", file=sys.stderr)
    if args.executor == "local" and (args.cluster or args.scheduler_file):
        raise InvalidInputError("--cluster / --scheduler-file go with --executor dask")
    if args.executor == "local" and (elsewhere := targets_elsewhere(study, fingerprint())):
        print(f"note: targets {', '.join(elsewhere)} are not this machine: their latency trials are left for a "
              f"cluster run (--executor dask)", file=sys.stderr)
    with progress_bar(remaining=True, transient=False) as show:
        if args.executor == "dask":
            from posebench.cluster import ClusterSettings, run_study_on_cluster

            settings = ClusterSettings(address=args.cluster, scheduler_file=args.scheduler_file,
                                       orphan_seconds=args.orphan_seconds)
            written = run_study_on_cluster(study, out, settings, retry_failed=args.retry_failed, on_progress=show)
        else:
            written = run_study(study, out, retry_failed=args.retry_failed, on_progress=show)
    if not (out / "results.jsonl").is_file():
        print(f"study '{study.name}': no trial runs on this machine (its targets: {', '.join(study.targets)}); "
              f"run it with --executor dask on a cluster that has them", file=sys.stderr)
        return EXIT_NONE_SKIPPED
    written = [r for r in written if r.kind != "probe"]  # trial records; probes are reported separately
    failed = [r for r in written if not r.ok]
    md, page = build_report([out / "results.jsonl"], out / "report", max_drop=args.max_drop, budget_ms=args.budget_ms,
                            metric=args.metric, prices=args.prices)
    _print_study_tables(out / "results.jsonl", metric=args.metric, max_drop=args.max_drop, budget_ms=args.budget_ms)
    print(f"study '{study.name}': {len(written)} new records ({len(failed)} failed or skipped); "
          f"results in {out / 'results.jsonl'}")
    print(f"report: {page}  (Markdown: {md})")
    return exit_status(latest_per_trial(merge([out / "results.jsonl"]), study=study.name))


def _print_study_tables(store: Path, *, metric: str = "map50", max_drop: float = 0.01,
                        budget_ms: float | None = None) -> None:
    """Mean latency per variant and runtime@threads (ms), and the verdict, in the terminal."""
    from rich.console import Console

    from posebench.report.model import Report
    from posebench.report.verdict import verdict
    from posebench.results import merge
    from posebench.tables import print_table

    report = Report(merge([store]), metric=metric)
    configs = list(dict.fromkeys(f"{r.identity.runtime}@{r.identity.threads}" for r in report.latency))
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in report.latency:
        t = r.identity
        cells.setdefault((t.model, t.variant), {})[f"{t.runtime}@{t.threads}"] = f"{r.latency_stats.mean_ms:.2f}"
    rows = [[m, v, *(c.get(k, "-") for k in configs)] for (m, v), c in cells.items()]
    print_table("batch-1 latency, mean ms (p50 and p99 in the report)", ("model", "variant", *configs), rows,
                left=("model", "variant"), width=190)
    for line in verdict(report, max_drop=max_drop, budget_ms=budget_ms):  # the same verdict as the report's
        Console(width=max(Console().width, 140)).print(line.replace("**", ""))
