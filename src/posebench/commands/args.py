"""Flags and helpers that several commands share: number types, the model and output flags, the progress bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posebench.models import ModelSource
    from posebench.record import Record

ShowProgress = Callable[[str, int, "int | None"], None]


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_output_args(p: argparse.ArgumentParser) -> None:
    """--json, --out and --cache-dir."""
    p.add_argument("--json", type=Path, metavar="PATH", help="also write this command's records here as a JSON list")
    p.add_argument("--out", type=Path, default=Path("runs/latest"), metavar="DIR",
                   help="output folder: results store (results.jsonl) and tables (default: runs/latest)")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="where built artifacts (ONNX, OpenVINO IR) are cached (default: ~/.cache/posebench/artifacts)")


def add_model_args(p: argparse.ArgumentParser, *, runtime_default: str, threads_default: str,
                    threads_help: str) -> None:
    """--model and the flags that say how it runs (runtimes, threads, input size, runtime options)."""
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


def runtime_options(args: argparse.Namespace) -> dict[str, dict]:
    """Per-runtime options from the shared flags (--deepsparse-python, --ort-provider, --flush-denormals...)."""
    ftz = {"flush_denormals": True} if args.flush_denormals else {}
    return {"deepsparse": {"python": args.deepsparse_python} if args.deepsparse_python else {},
            "onnxruntime": {"provider": args.ort_provider, **ftz}, "openvino": dict(ftz), "torch": dict(ftz),
            "tensorrt": {"precision": args.trt_precision}}


def model_source(args: argparse.Namespace) -> "ModelSource":
    """--model, with --kpt-shape folded in as the model option it is."""
    from posebench.export.imported import parse_kpt_shape
    from posebench.models import resolve_model

    if not args.kpt_shape:
        return resolve_model(args.model)
    k, d = parse_kpt_shape(args.kpt_shape)
    spec = str(args.model or "default")
    return resolve_model(spec[:-1] + f",kpt_shape={k}x{d}]" if spec.endswith("]") else spec + f"[kpt_shape={k}x{d}]")


def input_size(args: argparse.Namespace, source: "ModelSource") -> tuple[int, int]:
    """--imgsz, else the size a bundle or an imported artifact was built for, else 640."""
    from posebench.export import DEFAULT_CACHE, ArtifactStore, parse_imgsz

    if args.imgsz is not None:
        return parse_imgsz(args.imgsz)
    return parse_imgsz(ArtifactStore(source, args.cache_dir or DEFAULT_CACHE).fixed_imgsz() or 640)


def print_warnings(records: list[Record]) -> None:
    """Each distinct warning of the records, once, on stderr."""
    for text in dict.fromkeys(w for r in records for w in r.warnings):
        print(f"warning: {text}", file=sys.stderr)



@contextmanager
def progress_bar(*, remaining: bool = False, transient: bool = True) -> Iterator[ShowProgress]:
    """A rich progress bar; yields `show(what, done, total)`, the callback posebench's long jobs take."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn()]
    if remaining:
        columns += [TextColumn("left"), TimeRemainingColumn()]
    with Progress(*columns, transient=transient) as progress:
        task = progress.add_task("starting", total=None)

        def show(what: str, done: int, total: int | None) -> None:
            progress.update(task, description=what[:90], completed=done, total=total or None)

        yield show
