"""What is asked for, typed: a `Trial` (one latency or accuracy measurement of one configuration) with one `id`,
the `Evaluation` an accuracy trial is scored by, and `Built` (a trial's model once its variant is built).

`study` and `tune` generate trials; `posebench.runner.run_trial` runs one, here or on a Dask worker, and returns its
`posebench.record.Record`. A store is resumed by trial id: a trial whose id has a record is not run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from posebench.latency import DEFAULT_PROTOCOL, LatencyProtocol

KINDS = ("latency", "accuracy", "stream")
LABEL_FREE_FRAMES = 60  # frames a label-free accuracy check reads unless told (val, studies, the API alike)


@dataclass(frozen=True)
class Evaluation:
    """One accuracy check: against labels (`data`) or label-free against a reference model's output on `source`."""

    name: str
    data: Path | None = None
    split: str = "val"
    reference: str | None = None  # a study: a variant of the same model ("base"); tune: the model itself
    source: Path | None = None  # label-free: images, an image or a video
    max_frames: int = LABEL_FREE_FRAMES  # label-free: frames read (0: all)
    runtimes: tuple[str, ...] = ()  # the runtimes this evaluation scores on (empty: every runtime asked for)
    first_frame: int = 0  # label-free: frames before this one are left out (they calibrated or trained the model)
    reference_imgsz: tuple[int, int] | None = None  # the reference's input size (None: the trial's)
    reference_runtime: str = "torch"  # where the reference's predictions are made


@dataclass(frozen=True)
class Built:
    """A trial's model after its variant was built: the model to run, or why there is none."""

    spec: str | None
    error: str | None = None


@dataclass(frozen=True)
class Trial:
    """One measurement: a model's variant on one runtime (with its options in the spec), thread count and input
    size; latency in one mode, pipeline and round (on a hardware kind when `target` says), or accuracy by one
    evaluation. The fields after `stage` say how it is run and where its record goes, not which trial it is."""

    kind: str  # "latency" | "accuracy" | "stream" (`posebench stream`: frames paced through the whole pipeline)
    model: str  # as the study or tune names it: a path, a shipped model's name, "default"
    variant: str  # "base", a study's variant, a tune candidate
    runtime: str  # runtime spec: "openvino", "openvino[inference_precision=bf16]"
    threads: int
    imgsz: tuple[int, int]  # (height, width)
    mode: str = "model"  # latency: "model" (the runtime call) or "e2e" (frame in, poses out)
    pipeline: str = "posebench"  # e2e: posebench's pipeline or "ultralytics" (its predict)
    evaluation: Evaluation | None = None  # accuracy trials
    round: int = 1  # latency: the interleaved round
    target: str | None = None  # latency: the hardware kind it must run on (None: wherever it runs)
    stage: str = ""  # latency: a tune stage ("coarse", "fine")
    lineup: str = ""  # latency: the hash of the line-up it is interleaved with (a tune round's candidates)
    # how, not which:
    study: str = ""  # the study (or tune run) its record belongs to
    model_name: str = ""  # the name its record gives the model (default: `model`)
    protocol: LatencyProtocol = field(default=DEFAULT_PROTOCOL)
    frames: Path | None = None  # e2e: the frames it runs on (None: the images that ship with Ultralytics)
    gpu: bool = False  # a GPU runtime: skipped on a machine without one

    def __post_init__(self) -> None:
        from posebench.errors import InvalidInputError

        if self.kind not in KINDS:
            raise InvalidInputError(f"a trial's kind is one of {', '.join(KINDS)}, not '{self.kind}'")
        if (self.kind == "accuracy") != (self.evaluation is not None):
            raise InvalidInputError("an accuracy trial needs an evaluation, and only an accuracy trial has one")

    @property
    def id(self) -> str:
        """The trial's one id, stable across runs and readable ('default|base|latency|onnxruntime|2|r2')."""
        if self.kind == "accuracy":
            assert self.evaluation is not None
            return f"{self.model}|{self.variant}|accuracy|{self.evaluation.name}|{self.runtime}"
        if self.kind == "stream":
            source = self.frames.name if self.frames is not None else "-"
            return f"{self.model}|{self.variant}|stream|{self.runtime}|{self.threads}|{self.imgsz[0]}x{self.imgsz[1]}|{source}"
        return (f"{self.model}|{self.variant}|latency|{self.runtime}|{self.threads}"
                + (f"|{self.stage}" if self.stage else "") + (f"|{self.lineup}" if self.lineup else "")
                + (f"|r{self.round}" if self.round > 1 else "")
                + (f"|{self.mode}" if self.mode != "model" else "")
                + (f"|{self.pipeline}" if self.pipeline != "posebench" else "")
                + (f"|@{self.target}" if self.target else ""))

    @property
    def name(self) -> str:
        """The model's name in records."""
        return self.model_name or self.model
