"""What a `posebench compress` run may override in its recipe (the command line's flags)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CompressOptions:
    """Command-line overrides of the recipe (None = as the recipe says)."""

    data: Path | None = None
    pseudo_labels: Path | None = None
    bn_recalibration: Path | None = None  # images re-calibrating BatchNorm (else the recipe's source)
    epochs: int | None = None
    imgsz: int | None = None
    batch: int | None = None
    max_frames: int = 200  # pseudo-labelling: frames taken from a video / folder
    label_imgsz: int = 640  # pseudo-labelling: input size of the dense model
    calibration: Path | None = None  # int8 calibration images / video / data YAML (overrides the recipe)
    cache_dir: Path | None = None  # where fp32 exports are cached (default: ~/.cache/posebench/artifacts)
    device: str = "cpu"
    target_isa: str | None = None  # int8 target (overrides the recipe's target_isa; see posebench.machine.isa)
    teacher: Path | None = None  # distillation teacher checkpoint (default: the source model, before pruning)
