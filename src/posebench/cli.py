"""The posebench command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from posebench import __version__
from posebench.errors import InvalidInputError, PosebenchError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, metavar="PATH", help="also write this command's records here as a JSON list")
    p.add_argument("--out", type=Path, default=Path("runs/latest"), metavar="DIR",
                   help="output folder: results store (results.jsonl) and tables (default: runs/latest)")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="where built artifacts (ONNX, OpenVINO IR) are cached (default: ~/.cache/posebench/artifacts)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posebench",
        description="Compress, export, run, validate and time Ultralytics pose models on every runtime.")
    parser.add_argument("--version", action="version", version=f"posebench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = sub.add_parser("bench", help="batch-1 latency on several runtimes and thread counts",
                           description="Batch-1 latency: warm-up, then timed runs until both --iters and "
                                       "--min-seconds are reached; each runtime x threads in a fresh process.")
    bench.add_argument("--model", default=None, metavar="PATH_OR_YAML",
                       help="Ultralytics pose checkpoint (.pt) or model YAML (random weights); "
                            "default: the embedded COCO-trained yolo11n-pose.pt")
    bench.add_argument("--runtime", default="all", metavar="NAMES",
                       help="comma-separated: torch,onnxruntime,openvino,deepsparse,tensorrt,null, or 'all' "
                            "(every CPU runtime; default)")
    bench.add_argument("--threads", default="1,2", metavar="N[,N...]", help="thread counts to sweep (default: 1,2)")
    bench.add_argument("--imgsz", default="640", metavar="S|H,W", help="input size, multiple of 32 (default: 640)")
    bench.add_argument("--iters", type=_positive_int, default=2000, help="minimum timed runs (default: 2000)")
    bench.add_argument("--min-seconds", type=_non_negative_float, default=10.0,
                       help="minimum timed duration (default: 10)")
    bench.add_argument("--warmup", type=int, default=50, help="minimum warm-up runs (default: 50)")
    bench.add_argument("--warmup-seconds", type=_non_negative_float, default=2.0,
                       help="minimum warm-up duration (default: 2)")
    bench.add_argument("--max-seconds", type=_non_negative_float, default=0.0,
                       help="cap on the timed phase per measurement, 0 = none (capped runs are flagged)")
    bench.add_argument("--variant", default="base", help="variant label recorded with the results (default: base)")
    bench.add_argument("--deepsparse-python", default=None, metavar="PATH",
                       help="interpreter of the DeepSparse 1.8 environment (default: .venv-deepsparse)")
    bench.add_argument("--ort-provider", default="cpu", choices=["cpu", "cuda", "tensorrt"],
                       help="ONNX Runtime execution provider (default: cpu)")
    _add_common(bench)

    env = sub.add_parser("env", help="show this machine's fingerprint and which runtimes are installed")
    env.add_argument("--json", type=Path, metavar="PATH", help="also write the fingerprint here")
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from posebench.artifacts import DEFAULT_CACHE, parse_imgsz
    from posebench.bench import BenchPlan, parse_threads, run_bench
    from posebench.latency import LatencyProtocol
    from posebench.models import resolve_model
    from posebench.results import ResultStore, write_json
    from posebench.runtimes import parse_runtimes
    from posebench.tables import latency_markdown, print_latency_table

    if args.warmup < 0:
        raise InvalidInputError(f"--warmup must be >= 0, got {args.warmup}")
    runtimes = tuple(parse_runtimes(args.runtime))
    plan = BenchPlan(
        source=resolve_model(args.model), runtimes=runtimes, threads=parse_threads(args.threads),
        imgsz=parse_imgsz(args.imgsz),
        protocol=LatencyProtocol(iters=args.iters, min_seconds=args.min_seconds, warmup_iters=args.warmup,
                                 warmup_seconds=args.warmup_seconds, max_seconds=args.max_seconds),
        variant=args.variant, cache_dir=args.cache_dir or DEFAULT_CACHE,
        runtime_options={"deepsparse": {"python": args.deepsparse_python} if args.deepsparse_python else {},
                         "onnxruntime": {"provider": args.ort_provider}},
    )
    store = ResultStore(args.out / "results.jsonl")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task("starting", total=len(plan.runtimes) * len(plan.threads))
        records = run_bench(plan, store, lambda what, done, total: progress.update(task, description=what,
                                                                                   completed=done))
    print_latency_table(records)
    (args.out / "latency.md").write_text(latency_markdown(records))
    if args.json:
        write_json(args.json, records)
    failed = [r for r in records if r.get("status") != "ok"]
    print(f"{len(records) - len(failed)} of {len(records)} measurements ok; records in {store.path}"
          + (f" and {args.json}" if args.json else "") + f"; table in {args.out / 'latency.md'}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    import json

    from posebench.environment import fingerprint
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


COMMANDS = {"bench": cmd_bench, "env": cmd_env}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `posebench` command; returns the exit status."""
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PosebenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: records measured so far are in the results store", file=sys.stderr)
        return 130
