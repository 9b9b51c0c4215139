"""The parts of a compression recipe (`posebench.compress.recipe`): each modifier and block as a frozen
dataclass with its defaults."""


from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Any

from posebench.errors import InvalidInputError


class RecipeError(InvalidInputError):
    """A recipe is malformed; the message names the file, the line and the key."""


class SettingError(InvalidInputError):
    """A modifier's own check found one setting wrong (`key`): the recipe parser names that key's line."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


@dataclass(frozen=True)
class PruneGroup:
    """Parameters selected by `targets` (minus `exclude`) and the sparsity they end at."""

    targets: tuple[str, ...]  # globs or "re:<regex>" on parameter names, e.g. "model.*.weight"
    sparsity: float  # final fraction of zeros, in [0, 1)
    exclude: tuple[str, ...] = ()  # patterns removed from this group

    def select(self, names: list[str], extra_exclude: tuple[str, ...] = ()) -> list[str]:
        excluded = self.exclude + extra_exclude
        return [n for n in names if any(_matches(n, t) for t in self.targets)
                and not any(_matches(n, x) for x in excluded)]


@dataclass(frozen=True)
class PruningModifier:
    """Magnitude pruning of conv/linear weights, one-shot or on a gradual cubic schedule; unstructured, or in
    blocks of 4 consecutive input channels (`block4`, SparseML's semi-structured mask: the 4 int8 products one
    VNNI instruction sums)."""

    groups: tuple[PruneGroup, ...]
    type: str = "magnitude_pruning"
    scope: str = "local"  # "local": per tensor; "global": one magnitude threshold across a group
    mask: str = "unstructured"  # "unstructured" | "block4"
    schedule: str = "one-shot"  # "one-shot" | "gradual"
    start_epoch: float = 0.0  # gradual: first mask update
    end_epoch: float = 0.0  # gradual: final sparsity reached here, masks fixed afterwards
    update_frequency: float = 1.0  # gradual: epochs between mask updates
    init_sparsity: float = 0.05  # gradual: sparsity at start_epoch
    exclude: tuple[str, ...] = ()  # patterns excluded from every group

    def sparsity_at(self, final: float, epoch: float) -> float:
        """Target sparsity at `epoch` for a group ending at `final` (cubic schedule, stepped)."""
        if self.schedule == "one-shot" or epoch >= self.end_epoch:
            return final
        if epoch < self.start_epoch:
            return 0.0
        steps = math.floor((epoch - self.start_epoch) / self.update_frequency + 1e-9)
        progress = min(1.0, steps * self.update_frequency / (self.end_epoch - self.start_epoch))
        initial = min(self.init_sparsity, final)
        return final + (initial - final) * (1.0 - progress) ** 3


@dataclass(frozen=True)
class QuantizationModifier:
    """Quantization after any pruning and fine-tuning: post-training (ptq) or quantization-aware training (qat)."""

    type: str = "quantization"
    precision: str = "int8"  # "int8" (QDQ ONNX + OpenVINO IR) | "fp16" (ONNX + OpenVINO IR)
    method: str = "ptq"  # "ptq": calibrate the exported model | "qat": NNCF fake-quantize + fine-tune (int8 only)
    epochs: int = 1  # qat: fine-tuning epochs with the quantizers in place (data: the finetune block's)
    lr0: float = 0.0005  # qat: initial learning rate (low: the model is already trained)
    imgsz: tuple[int, ...] = (640, 640)  # static (height, width) of the quantized artifacts
    calibration_source: str | None = None  # images folder, data YAML or video (int8); CLI --calib overrides
    calibration_images: int = 128
    calibration_method: str = "MinMax"  # ONNX Runtime calibrator: MinMax | Entropy | Percentile
    per_channel: bool = True
    reduce_range: bool | None = None  # 7-bit weights; None ("auto"): chosen for target_isa (see posebench.machine.isa)
    target_isa: str = "auto"  # int8 kernels the artifacts are built for: auto (this machine) | avx2 | avx512 | ...
    ignored_preset: str = "yolo-pose-float-head"  # see posebench.compress.quantize.PRESETS
    ignored_add: tuple[str, ...] = ()  # node-name regexes also kept in float
    ignored_remove: tuple[str, ...] = ()  # node-name regexes quantized after all
    bias_correction: str = "fast"  # NNCF (OpenVINO IR): fast | full (layer by layer on the calibration frames: slower
    # to build, more faithful; ONNX Runtime's QDQ has none)


@dataclass(frozen=True)
class ChannelPruningModifier:
    """Structured pruning: whole channels removed from the model's prunable groups (see
    posebench.compress.channels), so every runtime runs a smaller dense model. One target: `ratio` (fraction of
    each group's channels removed), `macs` (fraction of the model's conv multiply-accumulates kept) or `latency`
    (fraction of its conv time kept on this machine's OpenVINO, as a measured table of conv shapes estimates it)."""

    type: str = "channel_pruning"
    ratio: float | None = None
    macs: float | None = None
    latency: float | None = None  # sensitivity allocation only; the table: posebench.compress.conv_latency
    criterion: str = "magnitude"  # magnitude (L2 of the producing filters) | bn_scale (|BatchNorm scale|) |
    #                               taylor (|weight x gradient| of the task loss on --data's labels)
    taylor_batches: int = 8  # taylor: labelled batches the loss's gradients are summed over
    steps: int = 1  # > 1: gradual, prune a step then recover (the fine-tuning epochs split over the steps), repeat;
    #                 the MACs kept fall linearly to `macs` (posebench.compress.gradual)
    round_to: int = 16  # channel counts kept at multiples of this (8 can crash DeepSparse 1.8 on YOLO26)
    exclude: tuple[str, ...] = ()  # regexes on group names (e.g. "model.23.cv4" keeps the keypoint branch whole)
    between: bool = False  # also prune the channels blocks hand to each other (stem, downsamplers, block outputs)
    imgsz: int = 640  # input size the MACs are counted at
    compensate: bool = False  # move the removed channels' mean activation into their readers' BatchNorm (no gain measured)
    allocation: str = "uniform"  # uniform ratio, or sensitivity: per group from a damage scan on images (macs target)
    damage: str = "outputs"  # sensitivity: outputs (head outputs' distance, 8 images) | ap (pose mAP lost, labelled)
    damage_images: int = 128  # damage: ap: labelled images of --data the scan validates each step on
    reconstruct: bool = False  # re-fit the convs that lost inputs to the dense model's outputs (least squares, no labels)
    reconstruct_images: int = 32  # images the reconstruction fits on (from the recovery / calibration source)
    reconstruct_weighting: str = "scores"  # scores: head-branch positions weighted by the dense model's person score
    #                                        there (75 % of the MACs, coco-pose-val: 0.457 vs 0.429 uniform) | uniform

    def __post_init__(self) -> None:
        """The settings fit together (one target; sensitivity for latency; compensate or reconstruct), as the plan
        they make checks; a gradual schedule steps a MACs target."""
        self.plan()
        if self.steps > 1 and self.macs is None:
            raise InvalidInputError("steps: a gradual channel schedule lowers the MACs kept step by step: give macs")

    def plan(self) -> Any:
        from posebench.compress.channel_plan import ChannelPlan

        return ChannelPlan(ratio=self.ratio, macs=self.macs, latency=self.latency, criterion=self.criterion, round_to=self.round_to,
                           exclude=self.exclude, between=self.between, compensate=self.compensate, allocation=self.allocation,
                           damage=self.damage, damage_images=self.damage_images,
                           reconstruct=self.reconstruct, reconstruct_weighting=self.reconstruct_weighting)


@dataclass(frozen=True)
class FineTune:
    """Recovery training through Ultralytics' trainer."""

    epochs: int = 0  # 0 = no training (one-shot pruning only)
    lr0: float = 0.002  # initial learning rate
    lrf: float = 0.1  # final learning rate as a fraction of lr0
    optimizer: str = "SGD"  # an Ultralytics optimizer name
    batch: int = 16
    imgsz: int = 640
    data: str | None = None  # Ultralytics data YAML; None = pseudo-labels from `pseudo_labels`
    pseudo_labels: str | None = None  # images folder or video labelled by the dense model when no data
    workers: int = 0  # data-loader workers (0: in-process, the safe default on small machines)
    mosaic: float = 1.0  # probability of Ultralytics' mosaic augmentation (0: the frames as they are; measured
    #                      on distillation from street frames: 0 recovers less, fidelity 0.587 vs 0.664)
    batchnorm: str = "auto"  # frozen: running statistics kept, BN in eval mode; train: Ultralytics' default;
    # auto: frozen unless masks change during training (gradual pruning). Frozen matters on small data: batch
    # statistics of a few mosaic images are not the running ones, and training against them moves the model.


@dataclass(frozen=True)
class Distillation:
    """Recovery from the dense model (see posebench.compress.distill): during fine-tuning, the compressed model
    also learns the dense model's outputs and neck features; `task: 0` uses no labels at all."""

    enabled: bool = False
    output: float = 1.0  # weight of the class + box + keypoint terms
    feature: float = 1.0  # weight of the neck-feature term
    task: float = 1.0  # weight of the model's own loss on the labels (real or pseudo); 0 = distillation only


@dataclass(frozen=True)
class BNRecalibration:
    """Refresh BatchNorm statistics after one-shot pruning (forward passes, no labels)."""

    source: str | None = None  # images folder or video; None = off
    images: int = 64  # calibration images (frames) used
    batch: int = 8
    imgsz: int = 640
    # after channel pruning, before fine-tuning with BatchNorm frozen: refresh the statistics on the fine-tuning data
    # first (true), or keep the model's own (false, the default: measured better on coco-pose-val with
    # coco-pose-recovery, dense -1.0 point, 80 % of the MACs -2.8, 75 % -5.1; benchmarks/results/bn-settle)
    before_finetune: bool = False
