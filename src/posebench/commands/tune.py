"""`posebench tune`: its arguments and what it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from posebench.commands.args import non_negative_float, positive_int, progress_bar
from posebench.errors import InvalidInputError
from posebench.latency import DEFAULT_THREADS


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `tune` and its flags to the subcommands."""
    tune = sub.add_parser("tune", help="the fastest deployment for your footage within an accuracy tolerance",
                          description="Search input size x channel pruning x precision x runtime x threads, coarse "
                                      "to fine, on your footage: frames before --eval-from calibrate and train, the "
                                      "rest judge (fidelity against the dense fp32 model at --native-imgsz; pose mAP50-95 too "
                                      "with --data). Ultralytics' OpenVINO int8 export at that size is always in the "
                                      "race as the reference. Writes OUT/tune.md, OUT/tune.json, OUT/winner/ (a "
                                      "bundle bench and val take) and OUT/results.jsonl; resumable.")
    tune.add_argument("--source", required=True, type=Path, metavar="VIDEO_OR_IMAGES",
                      help="footage the deployment will see (a video or an image folder)")
    tune.add_argument("--model", default=None, metavar="PATH_OR_YAML", help="model to tune (default: embedded)")
    tune.add_argument("--data", type=Path, default=None, metavar="YAML",
                      help="labelled Ultralytics data YAML: pose mAP50-95 must also stay within the tolerance")
    tune.add_argument("--split", default="val", help="split of --data (default: val)")
    tune.add_argument("--judge", type=Path, default=None, metavar="YAML",
                      help="labelled data YAML that only judges the winner at the end (pose mAP50-95 with intervals, "
                           "paired against fp32 at its size and the reference); refused if it shares an image with "
                           "--data or --extra-calibration")
    tune.add_argument("--runtime", default="auto", metavar="NAMES",
                      help="runtimes to consider (default auto: openvino, and on a CPU with bf16 arithmetic also "
                           "openvino[inference_precision=bf16])")
    tune.add_argument("--reference-runtime", default="auto", metavar="SPEC",
                      help="where the reference is scored and timed (default auto: as Ultralytics runs OpenVINO on "
                           "this CPU, its float parts in bf16 where the CPU has bf16 arithmetic)")
    tune.add_argument("--threads", default=str(DEFAULT_THREADS), metavar="N[,N...]",
                      help=f"thread counts to consider (default: {DEFAULT_THREADS})")
    tune.add_argument("--sizes", default="auto", metavar="auto|S,HxW,...",
                      help="input sizes (default auto: squares from 640 down and the footage's aspect ratio)")
    tune.add_argument("--precisions", default="fp32,int8,int8-coarse,int8-fast,int8-ultralytics",
                      help="fp32, int8 (posebench PTQ, float head), int8-coarse (PTQ, P4/P5 head and neck outputs in "
                           "float, P3 int8: more faithful at int8's cost), int8-fast (PTQ, keypoint branch int8 but its "
                           "last convs), int8-ultralytics (yolo export int8) (default: all five)")
    tune.add_argument("--macs", default="1", metavar="F[,F...]",
                      help="channel-pruning targets, the fraction of the conv MACs kept, 1 = no pruning (default: 1); "
                           "each spread over the groups by a damage scan and recovered by distillation from the dense "
                           "model on the calibration frames (--recovery-epochs)")
    tune.add_argument("--models", default="", metavar="NAME[,NAME...]",
                      help="models shipped in models/ (e.g. recovered channel-pruned ones) also searched, at every size "
                           "and precision; fidelity and the reference stay the --model's (default: none)")
    tune.add_argument("--recovery-epochs", type=positive_int, default=3, help="distillation epochs (default: 3)")
    tune.add_argument("--extra-calibration", type=Path, nargs="*", default=(), metavar="IMAGES",
                      help="more images that calibrate and train (never judge)")
    tune.add_argument("--eval-from", type=int, default=None, metavar="N",
                      help="first judging frame (default: the last quarter of the footage judges)")
    goal = tune.add_mutually_exclusive_group()
    goal.add_argument("--tolerance", type=non_negative_float, default=0.01,
                      help="accuracy below the reference's allowed (default: 0.01)")
    goal.add_argument("--budget-ms", type=non_negative_float, default=None,
                      help="instead: the most accurate deployment with p50 under this")
    tune.add_argument("--native-imgsz", default="640", metavar="S|H,W",
                      help="the dense model's own size: fidelity's reference and the size of the reference int8 "
                           "export (default: 640)")
    tune.add_argument("--quick", action="store_true", help="short latency protocols (a smoke run, not a verdict)")
    tune.add_argument("--out", type=Path, default=Path("runs/tune"), metavar="DIR")


def run(args: argparse.Namespace) -> int:
    """Run `posebench tune`; returns the exit status."""
    from posebench.bench import parse_threads
    from posebench.export import parse_imgsz
    from posebench.latency import QUICK_COARSE, QUICK_FINE
    from posebench.machine.environment import fingerprint
    from posebench.models import resolve_model
    from posebench.runtimes import parse_runtimes
    from posebench.tune import TunePlan, default_runtimes, tune, ultralytics_openvino

    try:
        macs = tuple(float(r) for r in args.macs.split(",") if r.strip())
    except ValueError:
        raise InvalidInputError(f"--macs takes fractions separated by commas (e.g. 1,0.75), got '{args.macs}'")
    sizes = () if args.sizes == "auto" else tuple(parse_imgsz(s) for s in args.sizes.split(",") if s.strip())
    quick = {"coarse": QUICK_COARSE, "fine": QUICK_FINE,
             "finalists": 2} if args.quick else {}
    isa = fingerprint().get("isa") or []
    runtimes = default_runtimes(isa) if args.runtime == "auto" else tuple(parse_runtimes(args.runtime))
    reference_runtime = ultralytics_openvino(isa) if args.reference_runtime == "auto" else args.reference_runtime
    parse_runtimes(reference_runtime)
    plan = TunePlan(source=resolve_model(args.model), footage=args.source, out=args.out, runtimes=runtimes,
                    reference_runtime=reference_runtime, threads=parse_threads(args.threads), sizes=sizes,
                    precisions=tuple(p.strip() for p in args.precisions.split(",") if p.strip()), macs=macs,
                    models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
                    recovery_epochs=args.recovery_epochs, extra_calibration=tuple(args.extra_calibration),
                    data=args.data, split=args.split, judge=args.judge, eval_from=args.eval_from,
                    tolerance=args.tolerance,
                    budget_ms=args.budget_ms, native=parse_imgsz(args.native_imgsz), **quick)
    from posebench.report.tune import write_tune_report

    with progress_bar() as show:
        summary = tune(plan, show)
    write_tune_report(args.out, summary)
    winner = summary["winner"]
    if winner:
        print(f"winner: {winner['candidate']} on {winner['runtime']} @ {winner['threads']}: p50 "
              f"{winner['p50_ms']:.2f} ms, {winner['x_vs_reference']:.2f}x Ultralytics' int8 export, "
              + ", ".join(f"{k} {v:.4f}" for k, v in winner["accuracy"].items() if v is not None))
        print(f"deployment: {winner['deployment']}")
    else:
        print("no candidate meets the goal; see the report")
    print(f"report: {args.out / 'tune.md'}")
    from posebench.errors import EXIT_GOAL_MISSED

    return 0 if winner else EXIT_GOAL_MISSED
