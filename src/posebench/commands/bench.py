"""`posebench bench`: its arguments and what it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from posebench.commands.args import (add_model_args, add_output_args, input_size, model_source, non_negative_float,
                                     positive_int, print_warnings, progress_bar, runtime_options)
from posebench.errors import InvalidInputError, exit_status
from posebench.latency import DEFAULT_PROTOCOL, SWEEP_THREADS


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `bench` and its flags to the subcommands."""
    bench = sub.add_parser("bench", help="batch-1 latency on several runtimes and thread counts",
                           description="Batch-1 latency: warm-up, then timed runs until both --iters and "
                                       "--min-seconds are reached; each runtime x threads in a fresh process.")
    sweep = ",".join(str(t) for t in SWEEP_THREADS)
    add_model_args(bench, runtime_default="all", threads_help=f"thread counts to sweep (default: {sweep})",
                   threads_default=sweep)
    d = DEFAULT_PROTOCOL
    bench.add_argument("--iters", type=positive_int, default=d.iters, help=f"minimum timed runs (default: {d.iters})")
    bench.add_argument("--min-seconds", type=non_negative_float, default=d.min_seconds,
                       help=f"minimum timed duration (default: {d.min_seconds:g})")
    bench.add_argument("--warmup", type=int, default=d.warmup_iters,
                       help=f"minimum warm-up runs (default: {d.warmup_iters})")
    bench.add_argument("--warmup-seconds", type=non_negative_float, default=d.warmup_seconds,
                       help=f"minimum warm-up duration (default: {d.warmup_seconds:g})")
    bench.add_argument("--max-seconds", type=non_negative_float, default=d.max_seconds,
                       help="cap on the timed phase per measurement, 0 = none (capped runs are flagged)")
    bench.add_argument("--mode", default="model", choices=["model", "e2e"],
                       help="model: the runtime call on one fixed tensor (default, as the thesis); e2e: decoded "
                            "frames through letterbox, runtime, decode + NMS and back to frame pixels, per stage")
    bench.add_argument("--source", type=Path, default=None, metavar="VIDEO_OR_IMAGES",
                       help="e2e frames: a video or image folder (default: the images that ship with Ultralytics)")
    bench.add_argument("--preprocess", default="auto", choices=["auto", "fused", "vectorised", "reference"],
                       help="e2e pre-processing: fused into the model (openvino, onnxruntime), vectorised numpy, or "
                            "the validator's reference code; auto = fused where the runtime can (default)")
    bench.add_argument("--pipeline", default="posebench", choices=["posebench", "ultralytics"],
                       help="e2e: posebench's pipeline (default) or Ultralytics' own YOLO(model).predict around the "
                            "same artifact, the reference (torch, onnxruntime, openvino)")
    add_output_args(bench)


def run(args: argparse.Namespace) -> int:
    """Run `posebench bench`; returns the exit status."""
    from posebench.bench import BenchPlan, parse_threads, run_bench
    from posebench.export import DEFAULT_CACHE
    from posebench.latency import LatencyProtocol
    from posebench.models import default_variant
    from posebench.results import ResultStore, write_json
    from posebench.runtimes import parse_runtimes
    from posebench.tables import latency_markdown, print_latency_table

    if args.warmup < 0:
        raise InvalidInputError(f"--warmup must be >= 0, got {args.warmup}")
    runtimes = tuple(parse_runtimes(args.runtime))
    source = model_source(args)
    plan = BenchPlan(
        source=source, runtimes=runtimes, threads=parse_threads(args.threads),
        imgsz=input_size(args, source),
        protocol=LatencyProtocol(iters=args.iters, min_seconds=args.min_seconds, warmup_iters=args.warmup,
                                 warmup_seconds=args.warmup_seconds, max_seconds=args.max_seconds),
        variant=args.variant or default_variant(source), cache_dir=args.cache_dir or DEFAULT_CACHE,
        runtime_options=runtime_options(args), mode=args.mode, frames=args.source, preprocess=args.preprocess,
        pipeline=args.pipeline,
    )
    store = ResultStore(args.out / "results.jsonl")
    with progress_bar() as show:
        records = run_bench(plan, store, show)
    print_latency_table(records)
    (args.out / "latency.md").write_text(latency_markdown(records))
    if args.json:
        write_json(args.json, records)
    failed = [r for r in records if not r.ok]
    print(f"{len(records) - len(failed)} of {len(records)} measurements ok; records in {store.path}"
          + (f" and {args.json}" if args.json else "") + f"; table in {args.out / 'latency.md'}")
    print_warnings(records)
    return exit_status(records)
