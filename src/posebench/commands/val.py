"""`posebench val`: its arguments and what it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from posebench.commands.args import (add_model_args, add_output_args, input_size, model_source, positive_int,
                                     print_warnings, progress_bar, runtime_options)
from posebench.errors import InvalidInputError, exit_status
from posebench.latency import DEFAULT_THREADS
from posebench.trial import LABEL_FREE_FRAMES


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `val` and its flags to the subcommands."""
    val = sub.add_parser("val", help="accuracy through deployed runtimes (labels, or label-free against a reference)",
                         description="Box and pose P, R, mAP50, mAP50-95 (as Ultralytics) and COCO keypoint AP, "
                                     "through each runtime with one shared pre/post-processing. With --reference, "
                                     "scores against another model's confident predictions instead of labels.")
    add_model_args(val, runtime_default="torch", threads_default=str(DEFAULT_THREADS),
                   threads_help=f"threads of the runtime (default: {DEFAULT_THREADS})")
    val.add_argument("--data", type=Path, default=None, metavar="YAML_OR_JSON",
                     help="Ultralytics pose data YAML, or COCO keypoints JSON (with --images)")
    val.add_argument("--split", default="val", help="split of a data YAML (default: val)")
    val.add_argument("--images", type=Path, default=None, metavar="DIR", help="image folder of a COCO JSON")
    val.add_argument("--conf", type=float, default=0.001, help="confidence threshold (default: 0.001, as yolo val)")
    val.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default: 0.7)")
    val.add_argument("--max-det", type=positive_int, default=300, help="detections per image (default: 300)")
    val.add_argument("--save-predictions", action="store_true",
                     help="write COCO results JSON per runtime into --out (re-score with pycocotools)")
    val.add_argument("--reference", default=None, metavar="MODEL",
                     help="label-free mode: this model's confident detections are the ground truth")
    val.add_argument("--reference-runtime", default="torch", help="runtime of the reference (default: torch)")
    val.add_argument("--source", type=Path, default=None, metavar="PATH",
                     help="label-free mode: a folder of images, an image, or a video")
    val.add_argument("--max-frames", type=int, default=LABEL_FREE_FRAMES,
                     help=f"frames/images used in label-free mode, 0 = all (default {LABEL_FREE_FRAMES})")
    val.add_argument("--frame-stride", type=positive_int, default=1, help="use every n-th video frame")
    val.add_argument("--first-frame", type=int, default=0, metavar="N",
                     help="label-free mode: start at this frame (or sorted image); keep frames that calibrated or "
                          "trained the model out (default: 0)")
    val.add_argument("--reference-imgsz", default=None, metavar="S|H,W",
                     help="input size of the reference (default: the reference bundle's own, else --imgsz)")
    val.add_argument("--preprocess", default="reference", choices=["reference", "fused", "vectorised", "auto"],
                     help="pre-processing path: the validator's reference code (default), or a deployed pipeline's "
                          "(fused into the model, vectorised numpy, auto): check that a fast path scores the same")
    val.add_argument("--ref-conf", type=float, default=0.5,
                     help="reference detections scoring at least this become ground truth (default: 0.5)")
    val.add_argument("--baseline", default=None, metavar="MODEL",
                     help="also score MODEL (e.g. the uncompressed one) on the same images through the first runtime, "
                          "and give each runtime's difference from it with a paired 95 %% interval")
    add_output_args(val)


def run(args: argparse.Namespace) -> int:
    """Run `posebench val`; returns the exit status."""
    from posebench.bench import parse_threads
    from posebench.evaluate.postprocess import NMSConfig
    from posebench.export import DEFAULT_CACHE, parse_imgsz
    from posebench.models import default_variant, resolve_model
    from posebench.results import ResultStore, write_json
    from posebench.runtimes import parse_runtimes
    from posebench.tables import accuracy_markdown, print_accuracy_table, with_interval
    from posebench.val import ValPlan, run_val

    threads = parse_threads(args.threads)
    if len(threads) != 1:
        raise InvalidInputError("val takes one --threads value (accuracy does not depend on it)")
    if args.max_frames < 0:
        raise InvalidInputError(f"--max-frames must be >= 0, got {args.max_frames}")
    if args.first_frame < 0:
        raise InvalidInputError(f"--first-frame must be >= 0, got {args.first_frame}")
    source = model_source(args)
    plan = ValPlan(
        source=source, runtimes=tuple(parse_runtimes(args.runtime)), imgsz=input_size(args, source),
        threads=threads[0], nms=NMSConfig(conf=args.conf, iou=args.iou, max_det=args.max_det),
        variant=args.variant or default_variant(source),
        runtime_options=runtime_options(args), cache_dir=args.cache_dir or DEFAULT_CACHE, data=args.data,
        split=args.split, images=args.images,
        reference=resolve_model(args.reference) if args.reference else None,
        reference_runtime=parse_runtimes(args.reference_runtime)[0], frames=args.source,
        max_frames=args.max_frames, frame_stride=args.frame_stride, ref_conf=args.ref_conf,
        first_frame=args.first_frame, predictions_dir=args.out if args.save_predictions else None,
        reference_imgsz=parse_imgsz(args.reference_imgsz) if args.reference_imgsz else None,
        preprocess=args.preprocess,
    )
    store = ResultStore(args.out / "results.jsonl")
    with progress_bar() as show:
        records = run_val(plan, store, show)
    comparisons: list[str] = []
    if args.baseline:
        from dataclasses import replace

        from posebench.val import compare_to_baseline

        baseline_plan = replace(plan, source=resolve_model(args.baseline), runtimes=plan.runtimes[:1],
                                variant=default_variant(resolve_model(args.baseline)), model_name=None)
        with progress_bar() as show:
            baseline = run_val(baseline_plan, store,
                               lambda what, done, total: show(f"baseline: {what}", done, total))[0]
        records, comparisons = compare_to_baseline(records, baseline, args.baseline)
        records = records + [baseline]
    print_accuracy_table(records)
    (args.out / "accuracy.md").write_text(accuracy_markdown(records))
    if args.json:
        write_json(args.json, records)
    for r in records:
        if r.ok:
            a = r.scores
            coco = f", COCO AP {with_interval(a, 'coco', 'AP')}" if a.group("coco") else ""
            if a.fidelity is not None:
                coco = (f", fidelity {with_interval(a, 'coco', 'AP')} (COCO keypoint AP against the reference; "
                        "1.0 = same poses)")
            ci = " (95 % intervals: bootstrap over images)" if a.has_intervals else ""
            who = ("baseline " if args.baseline and r is records[-1] else "") + r.identity.runtime
            print(f"{who}: pose mAP50 {with_interval(a, 'pose', 'map50')} mAP50-95 "
                  f"{with_interval(a, 'pose', 'map50_95')}, box mAP50 {with_interval(a, 'box', 'map50')} mAP50-95 "
                  f"{with_interval(a, 'box', 'map50_95')}{coco} on {a.images} "
                  f"images ({a.instances} instances) in {a.wall_seconds:.1f} s{ci}"
                  + (f"; {len(a.skipped)} input(s) left out: {'; '.join(a.skipped)}" if a.skipped else ""))
        else:
            print(f"{r.identity.runtime}: {r.status}: {r.error}")
    for line in comparisons:
        print(line)
    print(f"records in {store.path}" + (f" and {args.json}" if args.json else ""))
    print_warnings(records)
    return exit_status(records)
