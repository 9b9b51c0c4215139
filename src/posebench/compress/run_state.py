"""One compression in progress (`CompressRun`): what it was asked and what each stage has made so far; every stage
of `posebench.compress.run.compress` (and of a registered method, `posebench.compress.methods`) reads and writes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posebench.compress.options import CompressOptions, Progress
from posebench.models import ModelSource


RESULT_KINDS = ("checkpoint", "bundle", "export")


@dataclass(frozen=True)
class CompressResult:
    """What a compression made last, the thing a chain's next step (or a study's trial) loads: its checkpoint, a
    bundle folder (quantization) or an exported artifact (Ultralytics' own export). In a summary as "result"."""

    kind: str  # checkpoint | bundle | export
    spec: str  # a path posebench resolves as a model

    def __post_init__(self) -> None:
        if self.kind not in RESULT_KINDS:
            raise ValueError(f"a compression result is one of {', '.join(RESULT_KINDS)}, not '{self.kind}'")

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "spec": self.spec}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompressResult:
        return cls(str(data["kind"]), str(data["spec"]))


@dataclass
class CompressRun:
    """One compression in progress: what it was asked, and what each stage has made so far."""

    source: ModelSource
    recipe: Any  # posebench.compress.recipe.Recipe
    out_dir: Path
    options: CompressOptions
    say: Progress
    yolo: Any = None
    model: Any = None
    data: Path | None = None  # labelled data (or the pseudo-labelled set once made)
    pseudo: Path | None = None  # images or video the dense model labels
    epochs: int = 0
    imgsz: int = 640
    teacher: Any = None
    targets: list[Any] = field(default_factory=list)  # the magnitude modifiers' tensors
    channel_info: dict[str, Any] | None = None
    calibrated: int = 0
    pseudo_counts: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # once saved: the checkpoint and what the stages add
    result: CompressResult | None = None  # what was made last (the saved checkpoint, then a deploy stage's artifact)


@contextmanager
def timed(run: CompressRun, key: str) -> Iterator[None]:
    """Time the block into `run.timings[key]` (seconds)."""
    start = time.perf_counter()
    yield
    run.timings[key] = time.perf_counter() - start
