"""The posebench command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from posebench import __version__
from posebench.errors import EXIT_INPUT, EXIT_NONE_SKIPPED, InvalidInputError, PosebenchError, exit_status

if TYPE_CHECKING:
    from posebench.models import ModelSource


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


def _add_model_args(p: argparse.ArgumentParser, *, runtime_default: str, threads_default: str,
                    threads_help: str) -> None:
    p.add_argument("--model", default=None, metavar="PATH_OR_YAML",
                   help="Ultralytics pose checkpoint (.pt), model YAML (random weights, e.g. yolo26n-pose.yaml; "
                        "options: 'yolo26n-pose.yaml[head=one2many]'), a posebench bundle folder, or an artifact "
                        "made elsewhere: .onnx, OpenVINO .xml or *_openvino_model folder, TensorRT .engine; "
                        "default: the embedded COCO-trained yolo11n-pose.pt")
    p.add_argument("--kpt-shape", default=None, metavar="K,D",
                   help="keypoint shape of an imported artifact that carries no metadata (e.g. 17,3)")
    p.add_argument("--runtime", default=runtime_default, metavar="NAMES",
                   help="comma-separated: torch,onnxruntime,openvino,deepsparse,tensorrt,null, or 'all' "
                        "(every CPU runtime); options in brackets: 'tensorrt[precision=fp16]'; "
                        f"default: {runtime_default}")
    p.add_argument("--threads", default=threads_default, metavar="N[,N...]", help=threads_help)
    p.add_argument("--imgsz", default=None, metavar="S|H,W",
                   help="static input size (height, width), multiples of 32 (default: a bundle's or an exported "
                        "artifact's own size, else 640)")
    p.add_argument("--variant", default=None,
                   help="variant label recorded with the results (default: a bundle's recipe name, else base)")
    p.add_argument("--deepsparse-python", default=None, metavar="PATH",
                   help="interpreter of the DeepSparse 1.8 environment (default: .venv-deepsparse)")
    p.add_argument("--ort-provider", default="cpu", choices=["cpu", "cuda", "tensorrt"],
                   help="ONNX Runtime execution provider (default: cpu)")
    p.add_argument("--trt-precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="TensorRT engine precision (default: fp32; int8 needs a QDQ int8 bundle)")
    p.add_argument("--flush-denormals", action="store_true",
                   help="treat denormal floats as zero on torch, onnxruntime and openvino (recorded in the trial). "
                        "Per runtime instead: --runtime 'onnxruntime[flush_denormals=true],onnxruntime'")


def _runtime_options(args: argparse.Namespace) -> dict[str, dict]:
    ftz = {"flush_denormals": True} if args.flush_denormals else {}
    return {"deepsparse": {"python": args.deepsparse_python} if args.deepsparse_python else {},
            "onnxruntime": {"provider": args.ort_provider, **ftz}, "openvino": dict(ftz), "torch": dict(ftz),
            "tensorrt": {"precision": args.trt_precision}}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage on a bad flag or value (the full usage block is what --help is for)."""

    def error(self, message: str) -> NoReturn:
        positionals = " ".join(a.metavar or a.dest for a in self._positionals._group_actions)
        self.exit(2, f"usage: {self.prog} [options] {positionals}".rstrip() + f"  ({self.prog} --help)\n"
                     f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="posebench",
        description="Compress, export, run, validate and time Ultralytics pose models on every runtime.")
    parser.add_argument("--version", action="version", version=f"posebench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    bench = sub.add_parser("bench", help="batch-1 latency on several runtimes and thread counts",
                           description="Batch-1 latency: warm-up, then timed runs until both --iters and "
                                       "--min-seconds are reached; each runtime x threads in a fresh process.")
    _add_model_args(bench, runtime_default="all", threads_help="thread counts to sweep (default: 1,2)",
                    threads_default="1,2")
    bench.add_argument("--iters", type=_positive_int, default=2000, help="minimum timed runs (default: 2000)")
    bench.add_argument("--min-seconds", type=_non_negative_float, default=10.0,
                       help="minimum timed duration (default: 10)")
    bench.add_argument("--warmup", type=int, default=50, help="minimum warm-up runs (default: 50)")
    bench.add_argument("--warmup-seconds", type=_non_negative_float, default=2.0,
                       help="minimum warm-up duration (default: 2)")
    bench.add_argument("--max-seconds", type=_non_negative_float, default=0.0,
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
    _add_common(bench)

    val = sub.add_parser("val", help="accuracy through deployed runtimes (labels, or label-free against a reference)",
                         description="Box and pose P, R, mAP50, mAP50-95 (as Ultralytics) and COCO keypoint AP, "
                                     "through each runtime with one shared pre/post-processing. With --reference, "
                                     "scores against another model's confident predictions instead of labels.")
    _add_model_args(val, runtime_default="torch", threads_default="2",
                    threads_help="threads of the runtime (default: 2)")
    val.add_argument("--data", type=Path, default=None, metavar="YAML_OR_JSON",
                     help="Ultralytics pose data YAML, or COCO keypoints JSON (with --images)")
    val.add_argument("--split", default="val", help="split of a data YAML (default: val)")
    val.add_argument("--images", type=Path, default=None, metavar="DIR", help="image folder of a COCO JSON")
    val.add_argument("--conf", type=float, default=0.001, help="confidence threshold (default: 0.001, as yolo val)")
    val.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default: 0.7)")
    val.add_argument("--max-det", type=_positive_int, default=300, help="detections per image (default: 300)")
    val.add_argument("--save-predictions", action="store_true",
                     help="write COCO results JSON per runtime into --out (re-score with pycocotools)")
    val.add_argument("--reference", default=None, metavar="MODEL",
                     help="label-free mode: this model's confident detections are the ground truth")
    val.add_argument("--reference-runtime", default="torch", help="runtime of the reference (default: torch)")
    val.add_argument("--source", type=Path, default=None, metavar="PATH",
                     help="label-free mode: a folder of images, an image, or a video")
    val.add_argument("--max-frames", type=int, default=100, help="frames/images used in label-free mode, 0 = all")
    val.add_argument("--frame-stride", type=_positive_int, default=1, help="use every n-th video frame")
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
    _add_common(val)

    comp = sub.add_parser("compress", help="prune a pose model with a recipe (one-shot or gradual, with recovery)",
                          description="Apply a recipe (recipes/*.yaml): one-shot and/or gradual magnitude pruning, "
                                      "optional BatchNorm re-calibration, fine-tuning through Ultralytics' trainer "
                                      "on labels (--data) or on pseudo-labels made by the dense model "
                                      "(--pseudo-labels), then int8 (PTQ or QAT) / fp16 quantization. Writes "
                                      "OUT/model.pt and a per-layer sparsity table; with quantization also a bundle "
                                      "(OUT/bundle.json, QDQ ONNX, OpenVINO IR) that bench / val / study take as --model.")
    comp.add_argument("--model", default=None, metavar="PATH_OR_YAML", help="model to compress (default: embedded)")
    comp.add_argument("--recipe", required=True, type=Path, help="recipe YAML (see recipes/)")
    comp.add_argument("--data", type=Path, default=None, help="labelled Ultralytics data YAML for fine-tuning")
    comp.add_argument("--pseudo-labels", type=Path, default=None, metavar="IMAGES_OR_VIDEO",
                      help="no labels: fine-tune on these images/frames labelled by the dense model")
    comp.add_argument("--bn-calibrate", type=Path, default=None, metavar="IMAGES_OR_VIDEO",
                      help="re-calibrate BatchNorm statistics on these images after one-shot pruning")
    comp.add_argument("--calib", type=Path, default=None, metavar="IMAGES_OR_VIDEO",
                      help="int8 calibration images, video or data YAML (train split); keep it disjoint from "
                           "the evaluation images (QAT: initial ranges; default: the training images)")
    comp.add_argument("--target-isa", default=None,
                      choices=["auto", "amx", "avx512_vnni", "avx_vnni", "avx512", "avx2", "generic"],
                      help="int8 kernels to build for (default: the recipe's target_isa, auto = this machine): "
                           "CPUs without VNNI (avx2, avx512) get 7-bit weights in the QDQ model")
    comp.add_argument("--epochs", type=int, default=None,
                      help="epochs of every training stage: recovery fine-tuning (scales a gradual schedule) and QAT")
    comp.add_argument("--imgsz", type=int, default=None, help="fine-tuning image size (default: the recipe's)")
    comp.add_argument("--batch", type=_positive_int, default=None, help="fine-tuning batch size")
    comp.add_argument("--max-frames", type=_positive_int, default=200, help="frames used for pseudo-labels")
    comp.add_argument("--judge", type=Path, default=None, metavar="YAML",
                      help="the data YAML that will judge the result: refuse any learning input (--data, --calib, "
                           "--pseudo-labels, --bn-calibrate) that shares an image with its val split")
    comp.add_argument("--json", type=Path, metavar="PATH", help="also write the compression record here")
    comp.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (model.pt, sparsity.json)")

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

    work = sub.add_parser("worker", help="join a Dask cluster as a posebench worker (for study --executor dask)",
                          description="One task at a time; declares this machine's hardware kinds (avx2, "
                                      "avx512_vnni, cuda...) so latency trials of a study's `targets` land here.")
    work.add_argument("address", nargs="?", default=None, help="scheduler address, tcp://host:8786")
    work.add_argument("--scheduler-file", type=Path, default=None, help="Dask scheduler file instead of ADDRESS")
    work.add_argument("--kind", action="append", default=None, metavar="KIND",
                      help="hardware kind this worker counts as (repeatable; default: detected)")
    work.add_argument("--node", default=None, help="machine name (default: host name); one task per node at a time")
    work.add_argument("--name", default=None, help="worker name shown by the scheduler")

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
    tune.add_argument("--threads", default="2", metavar="N[,N...]", help="thread counts to consider (default: 2)")
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
    tune.add_argument("--recovery-epochs", type=_positive_int, default=3, help="distillation epochs (default: 3)")
    tune.add_argument("--extra-calibration", type=Path, nargs="*", default=(), metavar="IMAGES",
                      help="more images that calibrate and train (never judge)")
    tune.add_argument("--eval-from", type=int, default=None, metavar="N",
                      help="first judging frame (default: the last quarter of the footage judges)")
    goal = tune.add_mutually_exclusive_group()
    goal.add_argument("--tolerance", type=_non_negative_float, default=0.01,
                      help="accuracy below the reference's allowed (default: 0.01)")
    goal.add_argument("--budget-ms", type=_non_negative_float, default=None,
                      help="instead: the most accurate deployment with p50 under this")
    tune.add_argument("--native-imgsz", default="640", metavar="S|H,W",
                      help="the dense model's own size: fidelity's reference and the size of the reference int8 "
                           "export (default: 640)")
    tune.add_argument("--quick", action="store_true", help="short latency protocols (a smoke run, not a verdict)")
    tune.add_argument("--out", type=Path, default=Path("runs/tune"), metavar="DIR")

    stream = sub.add_parser("stream", help="a video, image folder or camera through one deployment, in real time",
                            description="Run SOURCE through one runtime at the source's frame rate (real-time pacing: "
                                        "late frames dropped or queued) or as fast as possible; prints sustained fps, "
                                        "dropped frames, end-to-end p50/p90/p99 and the time per stage.")
    stream.add_argument("source", metavar="SOURCE", help="video file, image folder, or camera index (0, 1, ...)")
    _add_model_args(stream, runtime_default="openvino", threads_default="2",
                    threads_help="threads of the runtime (default: 2)")
    stream.add_argument("--pace", default="realtime", choices=["realtime", "max"],
                        help="realtime: frames arrive at the source's rate (default); max: as fast as possible")
    stream.add_argument("--on-late", default="drop", choices=["drop", "queue"],
                        help="a frame arriving while the previous one is in flight: drop it, keeping only the newest "
                             "(default), or queue it")
    stream.add_argument("--inflight", type=int, default=1, metavar="N",
                        help="frames run at once (default 1: lowest latency per frame); 2 keeps both cores of a small "
                             "machine busy for more frames per second (openvino: as many streams; onnxruntime)")
    stream.add_argument("--fps", type=_non_negative_float, default=None,
                        help="source frame rate for real-time pacing (default: the video's own, else 25)")
    stream.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = all)")
    stream.add_argument("--preprocess", default="auto", choices=["auto", "fused", "vectorised", "reference"],
                        help="pre-processing path (default: fused into the model where the runtime can)")
    stream.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default: 0.25, as predict)")
    stream.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default: 0.7)")
    stream.add_argument("--save-video", type=Path, default=None, metavar="PATH",
                        help="write the frames with skeletons drawn (.avi or .mp4)")
    stream.add_argument("--save-poses", type=Path, default=None, metavar="PATH",
                        help="write the poses of every processed frame as JSON lines")
    _add_common(stream)

    env = sub.add_parser("env", help="show this machine's fingerprint and which runtimes are installed")
    env.add_argument("--json", type=Path, metavar="PATH", help="also write the fingerprint here")
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from posebench.export import DEFAULT_CACHE
    from posebench.bench import BenchPlan, parse_threads, run_bench
    from posebench.latency import LatencyProtocol
    from posebench.models import default_variant
    from posebench.results import ResultStore, write_json
    from posebench.runtimes import parse_runtimes
    from posebench.tables import latency_markdown, print_latency_table

    if args.warmup < 0:
        raise InvalidInputError(f"--warmup must be >= 0, got {args.warmup}")
    runtimes = tuple(parse_runtimes(args.runtime))
    source = _model_source(args)
    plan = BenchPlan(
        source=source, runtimes=runtimes, threads=parse_threads(args.threads),
        imgsz=_imgsz(args, source),
        protocol=LatencyProtocol(iters=args.iters, min_seconds=args.min_seconds, warmup_iters=args.warmup,
                                 warmup_seconds=args.warmup_seconds, max_seconds=args.max_seconds),
        variant=args.variant or default_variant(source), cache_dir=args.cache_dir or DEFAULT_CACHE,
        runtime_options=_runtime_options(args), mode=args.mode, frames=args.source, preprocess=args.preprocess,
        pipeline=args.pipeline,
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
    _print_warnings(records)
    return exit_status(records)


def _model_source(args: argparse.Namespace) -> "ModelSource":
    """--model, with --kpt-shape folded in as the model option it is."""
    from posebench.export.imported import parse_kpt_shape
    from posebench.models import resolve_model

    if not args.kpt_shape:
        return resolve_model(args.model)
    k, d = parse_kpt_shape(args.kpt_shape)
    spec = str(args.model or "default")
    return resolve_model(spec[:-1] + f",kpt_shape={k}x{d}]" if spec.endswith("]") else spec + f"[kpt_shape={k}x{d}]")


def _imgsz(args: argparse.Namespace, source: "ModelSource") -> tuple[int, int]:
    """--imgsz, else the size a bundle or an imported artifact was built for, else 640."""
    from posebench.export import ArtifactStore, DEFAULT_CACHE, parse_imgsz

    if args.imgsz is not None:
        return parse_imgsz(args.imgsz)
    return parse_imgsz(ArtifactStore(source, args.cache_dir or DEFAULT_CACHE).fixed_imgsz() or 640)


def _print_warnings(records: list[dict]) -> None:
    for text in dict.fromkeys(w for r in records for w in r.get("warnings", [])):
        print(f"warning: {text}", file=sys.stderr)


def cmd_val(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from posebench.export import DEFAULT_CACHE
    from posebench.bench import parse_threads
    from posebench.evaluate.postprocess import NMSConfig
    from posebench.export import parse_imgsz
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
    source = _model_source(args)
    plan = ValPlan(
        source=source, runtimes=tuple(parse_runtimes(args.runtime)), imgsz=_imgsz(args, source),
        threads=threads[0], nms=NMSConfig(conf=args.conf, iou=args.iou, max_det=args.max_det),
        variant=args.variant or default_variant(source),
        runtime_options=_runtime_options(args), cache_dir=args.cache_dir or DEFAULT_CACHE, data=args.data,
        split=args.split, images=args.images,
        reference=resolve_model(args.reference) if args.reference else None,
        reference_runtime=parse_runtimes(args.reference_runtime)[0], frames=args.source,
        max_frames=args.max_frames, frame_stride=args.frame_stride, ref_conf=args.ref_conf,
        first_frame=args.first_frame, predictions_dir=args.out if args.save_predictions else None,
        reference_imgsz=parse_imgsz(args.reference_imgsz) if args.reference_imgsz else None,
        preprocess=args.preprocess,
    )
    store = ResultStore(args.out / "results.jsonl")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task("starting", total=None)
        records = run_val(plan, store, lambda what, done, total: progress.update(
            task, description=what, completed=done, total=total or None))
    comparisons: list[str] = []
    if args.baseline:
        from dataclasses import replace

        from posebench.val import compare_to_baseline

        baseline_plan = replace(plan, source=resolve_model(args.baseline), runtimes=plan.runtimes[:1],
                                variant=default_variant(resolve_model(args.baseline)), model_name=None)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), transient=True) as progress:
            task = progress.add_task("baseline", total=None)
            baseline = run_val(baseline_plan, store, lambda what, done, total: progress.update(
                task, description=f"baseline: {what}", completed=done, total=total or None))[0]
        comparisons = compare_to_baseline(records, baseline, args.baseline)
        records = records + [baseline]
    print_accuracy_table(records)
    (args.out / "accuracy.md").write_text(accuracy_markdown(records))
    if args.json:
        write_json(args.json, records)
    for r in records:
        if r["status"] == "ok":
            a = r["accuracy"]
            coco = f", COCO AP {with_interval(a, 'coco', 'AP')}" if a.get("coco") else ""
            if "fidelity" in a:
                coco = (f", fidelity {with_interval(a, 'coco', 'AP')} (COCO keypoint AP against the reference; "
                        "1.0 = same poses)")
            ci = " (95 % intervals: bootstrap over images)" if a.get("intervals") else ""
            who = ("baseline " if args.baseline and r is records[-1] else "") + r["trial"]["runtime"]
            print(f"{who}: pose mAP50 {with_interval(a, 'pose', 'map50')} mAP50-95 "
                  f"{with_interval(a, 'pose', 'map50_95')}, box mAP50 {with_interval(a, 'box', 'map50')} mAP50-95 "
                  f"{with_interval(a, 'box', 'map50_95')}{coco} on {a['images']} "
                  f"images ({a['instances']} instances) in {a['wall_seconds']:.1f} s{ci}"
                  + (f"; {len(a['skipped'])} input(s) left out: {'; '.join(a['skipped'])}" if a.get("skipped") else ""))
        else:
            print(f"{r['trial']['runtime']}: {r['status']}: {r['error']}")
    for line in comparisons:
        print(line)
    print(f"records in {store.path}" + (f" and {args.json}" if args.json else ""))
    _print_warnings(records)
    return exit_status(records)


def cmd_compress(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from posebench.compress.recipe import Recipe
    from posebench.compress.run import CompressOptions, compress
    from posebench.environment import fingerprint
    from posebench.models import resolve_model
    from posebench.results import write_json

    if args.epochs is not None and args.epochs < 0:
        raise InvalidInputError(f"--epochs must be >= 0, got {args.epochs}")
    if args.imgsz is not None and (args.imgsz < 32 or args.imgsz % 32):
        raise InvalidInputError(f"--imgsz must be a positive multiple of 32, got {args.imgsz}")
    if args.judge is not None:
        from posebench.evaluate.disjoint import check_disjoint

        if not args.judge.is_file():
            raise InvalidInputError(f"--judge {args.judge} does not exist (a data YAML whose val split judges the model)")
        for what, learn in (("--data", args.data), ("--calib", args.calib), ("--pseudo-labels", args.pseudo_labels),
                            ("--bn-calibrate", args.bn_calibrate)):
            if learn is not None:
                check_disjoint(learn, args.judge, what=f"{what} ({'fine-tuning' if what == '--data' else 'learning'})")
    recipe = Recipe.load(args.recipe)
    source = resolve_model(args.model)
    options = CompressOptions(data=args.data, pseudo_labels=args.pseudo_labels, bn_source=args.bn_calibrate,
                              epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, max_frames=args.max_frames,
                              calibration=args.calib, target_isa=args.target_isa)
    console = Console(stderr=True)
    summary = compress(source, recipe, args.out, options=options,
                       on_progress=lambda message: console.print(f"[bold]posebench compress:[/bold] {message}"))
    table = Table(title=f"per-layer sparsity of {summary['checkpoint']}", show_lines=False)
    for col in ("parameter", "shape", "sparsity"):
        table.add_column(col, justify="left" if col == "parameter" else "right")
    for row in summary["per_layer"]:
        table.add_row(row["name"], "x".join(map(str, row["shape"])), f"{row['sparsity']:.4f}")
    if summary["per_layer"]:
        Console(width=max(Console().width, 100)).print(table)
    timings = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in summary["timings"].items())
    channels = summary.get("channel_pruning")
    shrink = (f"channel pruning kept {channels['macs_kept']:.1%} of the conv MACs at {channels['imgsz'][0]} and "
              f"{channels['params_after'] / channels['params_before']:.1%} of the parameters; ") if channels else ""
    print(f"{summary['checkpoint']}: {shrink}targeted weights {summary['targeted_sparsity']:.1%} zeros, whole model "
          f"{summary['model_sparsity']:.1%}; {timings}")
    if "bundle" in summary:
        b = summary["bundle"]
        print(f"{b['precision']} bundle in {args.out}: {', '.join(b['artifacts'].values())}; quantized nodes "
              f"{b['quantized_nodes']}, kept in float {b['float_nodes']}. Run it with: posebench bench --model "
              f"{args.out} --imgsz {b['imgsz'][0]},{b['imgsz'][1]} --runtime onnxruntime,openvino,deepsparse")
    if "export" in summary:
        e = summary["export"]
        print(f"Ultralytics' own {e['format']}{' int8' if e['int8'] else ''} export: {e['path']}. Run it with: "
              f"posebench bench --model {e['path']} --runtime {'openvino' if e['format'] == 'openvino' else 'onnxruntime'}")
    if args.json:
        write_json(args.json, [{"kind": "compress", **summary, "environment": fingerprint()}])
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from posebench.report.build import build_report
    from posebench.results import latest_per_trial, merge
    from posebench.environment import fingerprint
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
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()) as progress:
        task = progress.add_task("starting", total=None)

        def show(what: str, done: int, total: int) -> None:
            progress.update(task, description=what[:90], completed=done, total=total)

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
    written = [r for r in written if r.get("kind") != "probe"]  # trial records; probes are reported separately
    failed = [r for r in written if r.get("status") != "ok"]
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

    from posebench.report.build import Report, verdict
    from posebench.results import merge
    from posebench.tables import print_table

    report = Report(merge([store]), metric=metric)
    configs = list(dict.fromkeys(f"{r['trial']['runtime']}@{r['trial']['threads']}" for r in report.latency))
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in report.latency:
        t = r["trial"]
        cells.setdefault((t["model"], t["variant"]), {})[f"{t['runtime']}@{t['threads']}"] = (
            f"{r['latency']['mean_ms']:.2f}")
    rows = [[m, v, *(c.get(k, "-") for k in configs)] for (m, v), c in cells.items()]
    print_table("batch-1 latency, mean ms (p50 and p99 in the report)", ("model", "variant", *configs), rows,
                left=("model", "variant"), width=190)
    for line in verdict(report, max_drop=max_drop, budget_ms=budget_ms):  # the same verdict as the report's
        Console(width=max(Console().width, 140)).print(line.replace("**", ""))


def cmd_report(args: argparse.Namespace) -> int:
    from posebench.report.build import build_report

    from posebench.results import latest_per_trial, merge

    for path in args.results:
        if not path.is_file():
            raise InvalidInputError(f"results file {path} does not exist")
    md, page = build_report(args.results, args.out, max_drop=args.max_drop, budget_ms=args.budget_ms,
                            evaluation=args.evaluation, thesis=args.thesis, metric=args.metric, prices=args.prices)
    print(f"report: {page}  (Markdown: {md})")
    return exit_status(latest_per_trial(merge(args.results)))


def cmd_tune(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from posebench.bench import parse_threads
    from posebench.export import parse_imgsz
    from posebench.environment import fingerprint
    from posebench.latency import LatencyProtocol
    from posebench.models import resolve_model
    from posebench.runtimes import parse_runtimes
    from posebench.tune import TunePlan, default_runtimes, tune, ultralytics_openvino

    try:
        macs = tuple(float(r) for r in args.macs.split(",") if r.strip())
    except ValueError:
        raise InvalidInputError(f"--macs takes fractions separated by commas (e.g. 1,0.75), got '{args.macs}'")
    sizes = () if args.sizes == "auto" else tuple(parse_imgsz(s) for s in args.sizes.split(",") if s.strip())
    quick = {"coarse": LatencyProtocol(iters=10, min_seconds=0.2, warmup_iters=3, warmup_seconds=0.1),
             "fine": LatencyProtocol(iters=20, min_seconds=0.5, warmup_iters=5, warmup_seconds=0.2),
             "finalists": 2} if args.quick else {}
    isa = fingerprint().get("isa") or []
    runtimes = default_runtimes(isa) if args.runtime == "auto" else tuple(parse_runtimes(args.runtime))
    reference_runtime = ultralytics_openvino(isa) if args.reference_runtime == "auto" else args.reference_runtime
    parse_runtimes(reference_runtime)
    plan = TunePlan(source=resolve_model(args.model), footage=args.source, out=args.out, runtimes=runtimes,
                    reference_runtime=reference_runtime, threads=parse_threads(args.threads), sizes=sizes,
                    precisions=tuple(p.strip() for p in args.precisions.split(",") if p.strip()), macs=macs,
                    recovery_epochs=args.recovery_epochs, extra_calibration=tuple(args.extra_calibration),
                    data=args.data, split=args.split, judge=args.judge, eval_from=args.eval_from,
                    tolerance=args.tolerance,
                    budget_ms=args.budget_ms, native=parse_imgsz(args.native_imgsz), **quick)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task("starting", total=None)
        summary = tune(plan, lambda what, done, total: progress.update(
            task, description=what, completed=done, total=total or None))
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


def cmd_stream(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from posebench.bench import parse_threads
    from posebench.environment import fingerprint
    from posebench.evaluate.postprocess import NMSConfig
    from posebench.export import DEFAULT_CACHE, ArtifactStore, parse_imgsz, read_metadata
    from posebench.models import default_variant
    from posebench.pipeline import open_pipeline, resolve_preprocess
    from posebench.results import ResultStore, make_trial, new_record, write_json
    from posebench.runtimes import backend_class, parse_runtimes
    from posebench.runtimes.base import parse_runtime_spec
    from posebench.stream import FrameSource, matched_imgsz, run_stream

    runtimes, threads = parse_runtimes(args.runtime), parse_threads(args.threads)
    if len(runtimes) != 1 or len(threads) != 1:
        raise InvalidInputError("stream runs one deployment: give one --runtime and one --threads value")
    if args.max_frames < 0:
        raise InvalidInputError(f"--max-frames must be >= 0, got {args.max_frames}")
    if args.inflight < 1:
        raise InvalidInputError(f"--inflight must be >= 1, got {args.inflight}")
    runtime, own = parse_runtime_spec(runtimes[0])
    options = {**_runtime_options(args).get(runtime, {}), **own}
    cls = backend_class(runtime)
    if args.inflight > 1 and "streams" in cls.identity_options:  # one runtime stream per frame in flight
        options.setdefault("streams", args.inflight)
    cls.check_installed()
    model = _model_source(args)
    artifacts = ArtifactStore(model, args.cache_dir or DEFAULT_CACHE)
    artifacts.describe()
    frames = FrameSource(args.source, fps=args.fps or None, max_frames=args.max_frames)
    console = Console(stderr=True)
    try:
        fixed = artifacts.fixed_imgsz()
        if args.imgsz is not None:
            imgsz = parse_imgsz(args.imgsz)
        elif fixed:
            imgsz = parse_imgsz(fixed)
            matched = matched_imgsz(frames.first_frame().shape[:2], max(imgsz))
            if matched != imgsz:
                console.print(f"note: this model is built for {imgsz[0]}x{imgsz[1]}; {matched[0]}x{matched[1]} "
                              "matches the footage's aspect and does less work (build the model at that size)")
        else:
            imgsz = matched_imgsz(frames.first_frame().shape[:2])
        artifact = artifacts.get(cls.artifact_format, imgsz, accept=cls.accepts, prefer=cls.prefers)
        meta = read_metadata(artifact) or {}
        pipeline = open_pipeline(runtime, artifact, threads=threads[0], options=options,
                                 preprocess=args.preprocess, nms=NMSConfig(conf=args.conf, iou=args.iou),
                                 imgsz=imgsz)
        paced = f"paced at {frames.fps:g} fps, late frames {'dropped' if args.on_late == 'drop' else 'queued'}" \
            if args.pace == "realtime" else "as fast as possible"
        console.print(f"streaming {frames.name} through {runtime} ({meta.get('precision', 'fp32')}, {imgsz[0]}x"
                      f"{imgsz[1]}, {threads[0]} threads, {pipeline.preprocess} pre-processing"
                      + (f", {args.inflight} frames in flight" if args.inflight > 1 else "") + f"), {paced}; Ctrl-C "
                      "ends it with the summary")

        def progress(stats) -> None:  # noqa: ANN001 - StreamStats
            lat = np.percentile(np.asarray(stats.latency_ns[-200:]) / 1e6, 50) if stats.latency_ns else 0.0
            console.print(f"  {stats.processed} frames, {stats.sustained_fps:.1f} fps, {stats.dropped} dropped, "
                          f"e2e p50 {lat:.1f} ms", end="\r", highlight=False)

        with pipeline.backend:
            stats = run_stream(pipeline, frames, pace=args.pace, on_late=args.on_late, inflight=args.inflight,
                               save_video=args.save_video,
                               save_poses=args.save_poses, on_progress=progress if console.is_terminal else None)
    finally:
        frames.close()
    summary = stats.to_dict()
    trial = make_trial(model=model.name, source_id=model.identity(), variant=args.variant or default_variant(model),
                       runtime=runtime, threads=threads[0], imgsz=imgsz, fmt=cls.artifact_format,
                       precision=meta.get("precision", "fp32"), options=cls.identity(options), mode="stream",
                       pipeline={"preprocess": resolve_preprocess(args.preprocess, cls), "source": frames.name,
                                 **({"inflight": args.inflight} if args.inflight > 1 else {})})
    record = new_record("stream", trial, status="ok", stream=summary, pipeline=pipeline.describe(),
                        artifact={"path": str(artifact), "form": meta.get("form")}, environment=fingerprint())
    store = ResultStore(args.out / "results.jsonl")
    store.append(record)
    if args.json:
        write_json(args.json, [record])
    print(stream_summary(summary))
    extras = [f"annotated video {args.save_video}" if args.save_video else "",
              f"poses {args.save_poses}" if args.save_poses else ""]
    print(f"record in {store.path}" + "".join(f"; {e}" for e in extras if e))
    return 130 if stats.interrupted else 0


def stream_summary(s: dict) -> str:
    """The end-of-stream lines a person reads."""
    lines = [f"{s['source']}: {s['processed']} of {s['frames_read']} frames processed in {s['wall_seconds']:.1f} s: "
             f"{s['sustained_fps']:.1f} fps sustained"
             + (f" ({s['inflight']} frames in flight)" if s.get("inflight", 1) > 1 else "")
             + (f" (source {s['fps_source']:g} fps, {s['dropped']} dropped)" if s["pace"] == "realtime" else "")
             + (f"; {s['corrupt']} unreadable frame(s) skipped" if s["corrupt"] else "")
             + ("; interrupted" if s["interrupted"] else "")]
    if "e2e" in s:
        e, st = s["e2e"], s["stages"]
        lines.append(f"end to end (arrival -> poses): p50 {e['p50_ms']:.1f} ms, p90 {e['p90_ms']:.1f}, p99 "
                     f"{e['p99_ms']:.1f}; per stage p50: pre {st['pre']['p50_ms']:.2f} ms, infer "
                     f"{st['infer']['p50_ms']:.1f} ms, post {st['post']['p50_ms']:.2f} ms")
    return "\n".join(lines)


def cmd_worker(args: argparse.Namespace) -> int:
    from posebench.cluster import serve_worker

    if not args.address and not args.scheduler_file:
        raise InvalidInputError("posebench worker needs the scheduler's ADDRESS (tcp://host:8786) or --scheduler-file")
    try:
        serve_worker(args.address, scheduler_file=args.scheduler_file, kinds=args.kind, node=args.node, name=args.name)
    except KeyboardInterrupt:
        return 130
    return 0


COMMANDS = {"worker": cmd_worker, "bench": cmd_bench, "val": cmd_val, "compress": cmd_compress, "study": cmd_study, "report": cmd_report,
            "tune": cmd_tune, "stream": cmd_stream, "env": cmd_env}


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
        return COMMANDS[args.command](args)
    except PosebenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted: records measured so far are in the results store", file=sys.stderr)
        return 130
