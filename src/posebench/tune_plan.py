"""What `posebench tune` searches (`TunePlan`): its candidates (input size x precision x MACs kept), the sizes
that match the footage, where the footage splits into learning and judging frames, and the runtimes it
times by default (see `posebench.tune` for the search)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from posebench.errors import InvalidInputError
from posebench.latency import TUNE_COARSE, TUNE_FINE, LatencyProtocol
from posebench.machine.cpu import bf16_arithmetic
from posebench.models import ModelSource
from posebench.runtimes.base import runtime_class

Progress = Callable[[str, int, int], None]
PRECISIONS = ("fp32", "int8", "int8-coarse", "int8-fast", "int8-ultralytics")
# precision -> (ignored-scope preset, bias correction) of posebench's int8 PTQ:
# int8: the decode and the keypoint branch in float (the default preset);
# int8-coarse: P4/P5 neck outputs and head branches in float, P3 int8, biases corrected layer by layer (384x640,
# street video: fidelity 0.984-0.993 where int8 has 0.970-0.982, at 0.95-1.00x its time without bf16);
# int8-fast: the keypoint branch's 3x3 convs in int8 too, only its last 1x1 convs and the decode float
# (measured at 384x640 on AVX2: 29.2 vs 35.2 ms, fidelity 0.958 vs 0.981)
INT8_PRESETS = {"int8": ("yolo-pose-float-head", "fast"), "int8-coarse": ("yolo-pose-float-coarse", "full"),
                "int8-fast": ("yolo-pose-float-kpt-out", "fast")}
NATIVE = (640, 640)


def ultralytics_openvino(isa: Iterable[str]) -> str:
    """The OpenVINO runtime spec that runs an IR as Ultralytics' `predict` does on a CPU with these ISA flags: it
    compiles with no precision hint, so on a CPU with bf16 arithmetic the float parts run in bf16 (posebench's
    openvino asks for f32 unless told otherwise)."""
    return "openvino[inference_precision=bf16]" if bf16_arithmetic(isa) else "openvino"


def default_runtimes(isa: Iterable[str]) -> tuple[str, ...]:
    """OpenVINO in f32, and on a CPU with bf16 arithmetic also with its float parts in bf16."""
    return tuple(dict.fromkeys(("openvino", ultralytics_openvino(isa))))


def is_openvino(spec: str) -> bool:
    """Whether the runtime runs OpenVINO IRs (Ultralytics' int8 export is one)."""
    return runtime_class(spec).artifact_format == "openvino"


@dataclass(frozen=True)
class Candidate:
    """One deployment: input size, channel-pruning ratio and precision (the runtime and threads are measured)."""

    imgsz: tuple[int, int]
    precision: str = "fp32"  # fp32 | int8 / int8-fast (posebench PTQ) | int8-ultralytics (yolo export int8, NNCF)
    macs: float = 1.0  # fraction of the conv MACs channel pruning keeps (1 = no pruning)
    start: str = ""  # a model shipped in models/ to start from instead of the plan's source ("" = the source)

    @property
    def name(self) -> str:
        parts = [f"{self.imgsz[0]}x{self.imgsz[1]}"] + ([self.start] if self.start else []) \
            + ([f"m{round(self.macs * 100)}"] if self.macs < 1 else [])
        return "-".join(parts + [self.precision])

    @property
    def compressed(self) -> bool:
        """Whether this is more than the source model at its size in fp32 (what the size stage already scored)."""
        return self.precision != "fp32" or self.macs < 1 or bool(self.start)

    @classmethod
    def of_row(cls, row: dict) -> Candidate:
        """The candidate a summary row describes."""
        return cls(tuple(row["imgsz"]), row["precision"], row["macs"], row.get("start", ""))


@dataclass(frozen=True)
class TunePlan:
    """What to tune, on what footage, for which goal."""

    source: ModelSource
    footage: Path  # a video or a folder of images: the deployment's own
    out: Path
    runtimes: tuple[str, ...] = ("openvino",)
    threads: tuple[int, ...] = (2,)
    sizes: tuple[tuple[int, int], ...] = ()  # () = candidates from the footage's aspect ratio
    native: tuple[int, int] = NATIVE  # the dense model's size: fidelity's reference and the int8 export's size
    precisions: tuple[str, ...] = PRECISIONS
    macs: tuple[float, ...] = (1.0,)  # channel-pruning targets (fraction of conv MACs kept; 1 = none)
    models: tuple[str, ...] = ()  # shipped models (models/, e.g. recovered channel-pruned ones) searched beside them
    recovery_epochs: int = 3
    extra_calibration: tuple[Path, ...] = ()  # images that also calibrate / train (never judge)
    data: Path | None = None  # labelled Ultralytics data YAML: pose mAP50-95 also gates (it chooses: never the judge)
    split: str = "val"
    judge: Path | None = None  # labelled data YAML that only judges the winner at the end (its val split)
    eval_from: int | None = None  # first judging frame; default: the last quarter of the footage
    max_calibration: int = 300
    tolerance: float = 0.01  # accuracy below the reference's allowed
    budget_ms: float | None = None  # instead: the most accurate candidate within this p50
    coarse: LatencyProtocol = TUNE_COARSE
    fine: LatencyProtocol = TUNE_FINE
    coarse_rounds: int = 2
    fine_rounds: int = 3
    finalists: int = 3
    # where the reference (Ultralytics' int8 IR) is scored and timed: an OpenVINO spec; `ultralytics_openvino(isa)`
    # is how Ultralytics itself runs it on the machine
    reference_runtime: str = "openvino"

    def __post_init__(self) -> None:
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown or not self.precisions:
            raise InvalidInputError(f"precisions must be among {', '.join(PRECISIONS)}, got {', '.join(unknown) or 'none'}")
        if any(not 0.05 <= m <= 1 for m in self.macs):
            raise InvalidInputError(f"channel-pruning targets (fraction of the MACs kept) must be in [0.05, 1], got "
                                    f"{list(self.macs)}")
        if self.models:
            from posebench.models import shipped_models

            unknown_models = [m for m in self.models if m not in shipped_models()]
            if unknown_models:
                raise InvalidInputError(f"--models: {', '.join(unknown_models)} not shipped (models/ has: "
                                        f"{', '.join(shipped_models()) or 'none'})")
        if not self.footage.exists():
            raise InvalidInputError(f"footage {self.footage} does not exist: give the video or image folder the "
                                    "deployment will see")
        if self.tolerance < 0:
            raise InvalidInputError(f"the accuracy tolerance must be >= 0, got {self.tolerance}")
        if self.budget_ms is not None and self.budget_ms <= 0:
            raise InvalidInputError(f"the latency budget must be > 0 ms, got {self.budget_ms}")
        if self.source.kind in ("artifact", "bundle"):
            raise InvalidInputError(f"{self.source.spec}: tune compresses and exports the model itself; give a "
                                    "PyTorch checkpoint (.pt) or a model YAML")
        if not is_openvino(self.reference_runtime):
            raise InvalidInputError(f"the reference (Ultralytics' OpenVINO int8 export) runs on openvino, not "
                                    f"'{self.reference_runtime}'")
        if self.judge is not None:
            from posebench.evaluate.disjoint import check_disjoint

            if not self.judge.is_file():
                raise InvalidInputError(f"--judge {self.judge} does not exist (a labelled data YAML)")
            for what, learn in [("--data (choosing)", self.data)] + [("--extra-calibration", e)
                                                                     for e in self.extra_calibration]:
                if learn is not None:
                    check_disjoint(learn, self.judge, what=what, learn_split=self.split if learn == self.data
                                   else "train")
        if self.coarse_rounds < 2 or self.fine_rounds < 2:
            raise InvalidInputError("latency is measured in at least 2 interleaved rounds (noise shows between them)")


def candidate_sizes(frame_hw: tuple[int, int], native: int = 640) -> tuple[tuple[int, int], ...]:
    """Input sizes worth trying for frames of `frame_hw`: the native square, smaller squares, and for every long
    side the short side the footage's aspect ratio needs (rounded up to the stride, 32): 16:9 at 640 -> 384x640."""
    h, w = frame_hw
    sizes: list[tuple[int, int]] = []
    for long in range(native, 256 - 1, -64):
        short = min(long, math.ceil(long * min(h, w) / max(h, w) / 32) * 32)
        matched = (short, long) if w >= h else (long, short)
        for size in ((long, long), matched):
            if size not in sizes:
                sizes.append(size)
    return tuple(sizes)


def footage_split(footage: Path, eval_from: int | None) -> tuple[int, int, tuple[int, int]]:
    """(frames in the footage, first judging frame, frame height and width)."""
    from posebench.evaluate.validate import iter_frames

    count, shape = 0, None
    for _, image in iter_frames(footage):
        count += 1
        shape = shape or image.shape[:2]
    first = count - max(1, count // 4) if eval_from is None else eval_from
    if not 0 < first < count:
        raise InvalidInputError(f"{footage} has {count} frames: the first judging frame must be in 1..{count - 1} "
                                f"(frames before it calibrate and train, the rest judge), got {first}")
    return count, first, (int(shape[0]), int(shape[1]))
