"""Compression recipes: validated YAML documents of modifiers, in the spirit of SparseML's.

    name: yolo11-pose-p50
    modifiers:
      - type: magnitude_pruning
        scope: local                 # local: each tensor to its sparsity; global: one threshold per group
        mask: unstructured           # unstructured | block4 (4 consecutive input channels zeroed together)
        schedule: gradual            # one-shot | gradual (cubic, Zhu & Gupta 2017)
        start_epoch: 0
        end_epoch: 6
        update_frequency: 0.5        # epochs between mask updates
        init_sparsity: 0.05
        exclude: ["model.0.*", "*.dfl.*", "*.cv4.*"]     # first conv, DFL, pose head
        groups:
          - targets: ["model.*.weight"]                 # globs, or "re:<regex>", on parameter names
            sparsity: 0.5
    finetune:
      epochs: 10
      lr0: 0.002

A broken recipe fails before any work starts, naming the line. `Recipe.from_yaml(r.to_yaml()) == r`.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from posebench.compress.yamlmarks import load_with_lines
from posebench.errors import InvalidInputError


class RecipeError(InvalidInputError):
    """A recipe is malformed; the message names the file, the line and the key."""


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


EXPORT_FORMATS = ("openvino", "onnx")


@dataclass(frozen=True)
class ChannelPruningModifier:
    """Structured pruning: whole channels removed from the model's prunable groups (see
    posebench.compress.channels), so every runtime runs a smaller dense model. One target: `ratio` (fraction of
    each group's channels removed) or `macs` (fraction of the model's conv multiply-accumulates kept)."""

    type: str = "channel_pruning"
    ratio: float | None = None
    macs: float | None = None
    criterion: str = "magnitude"  # magnitude (L2 of the producing filters) | bn_scale (|BatchNorm scale|) |
    #                               taylor (|weight x gradient| of the task loss on --data's labels)
    taylor_batches: int = 8  # taylor: labelled batches the loss's gradients are summed over
    steps: int = 1  # > 1: gradual, prune a step then recover (the fine-tuning epochs split over the steps), repeat;
    #                 the MACs kept fall linearly to `macs` (posebench.compress.gradual)
    round_to: int = 16  # channel counts kept at multiples of this (8 can crash DeepSparse 1.8 on YOLO26)
    exclude: tuple[str, ...] = ()  # regexes on group names (e.g. "model.23.cv4" keeps the keypoint branch whole)
    imgsz: int = 640  # input size the MACs are counted at
    compensate: bool = False  # move the removed channels' mean activation into their readers' BatchNorm (no gain measured)
    allocation: str = "uniform"  # uniform ratio, or sensitivity: per group from a damage scan on images (macs target)
    reconstruct: bool = False  # re-fit the convs that lost inputs to the dense model's outputs (least squares, no labels)
    reconstruct_images: int = 32  # images the reconstruction fits on (from the recovery / calibration source)

    def plan(self) -> Any:
        from posebench.compress.channels import ChannelPlan

        return ChannelPlan(ratio=self.ratio, macs=self.macs, criterion=self.criterion, round_to=self.round_to,
                           exclude=self.exclude, compensate=self.compensate, allocation=self.allocation,
                           reconstruct=self.reconstruct)


@dataclass(frozen=True)
class UltralyticsExport:
    """The peer's artifact: Ultralytics' own `yolo export` of the (pruned, fine-tuned) model, so a study shows
    posebench's artifacts side by side with what one `yolo export` line gives a user."""

    type: str = "ultralytics_export"
    format: str = "openvino"  # openvino | onnx
    int8: bool = False  # openvino: Ultralytics' NNCF int8 PTQ (`yolo export format=openvino int8=True`)
    imgsz: tuple[int, ...] = (640, 640)  # static (height, width); a study sets its own
    calibration_source: str | None = None  # int8: images folder or video; CLI --calib / a study's calibration
    calibration_images: int = 128


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


@dataclass(frozen=True)
class Recipe:
    """A named list of modifiers and an optional fine-tuning block."""

    modifiers: tuple[PruningModifier | ChannelPruningModifier | QuantizationModifier | UltralyticsExport, ...] = ()
    finetune: FineTune = field(default_factory=FineTune)
    bn_recalibration: BNRecalibration = field(default_factory=BNRecalibration)
    distillation: Distillation = field(default_factory=Distillation)
    name: str = ""
    description: str = ""
    version: int = 1

    # ---- loading and validation --------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<recipe>") -> Recipe:
        """Parse and validate recipe text; errors name `source` and the line."""
        try:
            data, lines = load_with_lines(text)
        except yaml.YAMLError as exc:
            raise RecipeError(f"{source}: not valid YAML: {exc}") from exc
        return _Parser(source, lines).recipe(data)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe {path} does not exist (shipped recipes are in the project's recipes/ folder)")
        return cls.from_yaml(path.read_text(), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (every field), the inverse of parsing."""
        def plain(obj: Any) -> Any:
            if hasattr(obj, "__dataclass_fields__"):
                return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
            if isinstance(obj, tuple):
                return [plain(v) for v in obj]
            return obj
        return plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def pruning(self) -> tuple[PruningModifier, ...]:
        return tuple(m for m in self.modifiers if m.type == "magnitude_pruning")

    def frozen_batchnorm(self) -> bool:
        """Whether fine-tuning keeps BatchNorm statistics fixed (`finetune.batchnorm`; auto: unless masks move)."""
        if self.finetune.batchnorm != "auto":
            return self.finetune.batchnorm == "frozen"
        return not any(m.schedule == "gradual" for m in self.pruning())

    def channel_pruning(self) -> ChannelPruningModifier | None:
        found = [m for m in self.modifiers if m.type == "channel_pruning"]
        return found[0] if found else None

    def quantization(self) -> QuantizationModifier | None:
        found = [m for m in self.modifiers if m.type == "quantization"]
        return found[-1] if found else None

    def ultralytics_export(self) -> UltralyticsExport | None:
        found = [m for m in self.modifiers if m.type == "ultralytics_export"]
        return found[-1] if found else None

    def qat(self) -> QuantizationModifier | None:
        """The quantization-aware training step, if the recipe has one."""
        q = self.quantization()
        return q if q is not None and q.method == "qat" else None

    def gradual(self) -> tuple[PruningModifier, ...]:
        return tuple(m for m in self.pruning() if m.schedule == "gradual")

    def with_epochs(self, epochs: int) -> Recipe:
        """The same recipe with every training stage run for `epochs` (recovery fine-tuning, with gradual
        schedules stretched or shrunk to match, and QAT); a QAT-only recipe gets no extra fine-tuning."""
        q = self.qat()
        recipe = self
        if q is not None:
            if epochs < 1:
                raise RecipeError("quantization-aware training needs at least one epoch")
            recipe = replace(self, modifiers=tuple(replace(m, epochs=epochs) if m is q else m for m in self.modifiers))
            if not self.pruning() and not self.finetune.epochs:
                return recipe
        return recipe._with_finetune_epochs(epochs)

    def _with_finetune_epochs(self, epochs: int) -> Recipe:
        if epochs == self.finetune.epochs:
            return self
        factor = epochs / self.finetune.epochs if self.finetune.epochs else 1.0
        modifiers = tuple(
            replace(m, start_epoch=m.start_epoch * factor, end_epoch=m.end_epoch * factor,
                    update_frequency=max(m.update_frequency * factor, 1e-6)) if m in self.gradual() else m
            for m in self.modifiers)
        if self.gradual() and epochs <= 0:
            raise RecipeError("a gradual pruning schedule needs at least one fine-tuning epoch")
        return replace(self, modifiers=modifiers, finetune=replace(self.finetune, epochs=epochs))

    def max_epoch(self) -> float:
        return max([m.end_epoch for m in self.pruning()] + [0.0])


class _Parser:
    """Builds the dataclasses from parsed YAML, checking keys, types and ranges with line numbers."""

    def __init__(self, source: str, lines: dict[tuple, int]):
        self.source, self.lines = source, lines

    def fail(self, path: tuple, message: str) -> RecipeError:
        line = self.lines.get(path) or self.lines.get(path[:-1]) or 0
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "recipe"
        return RecipeError(f"{self.source}, line {line}: {where}: {message}")

    def keys(self, data: Any, path: tuple, cls: type, required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(path, f"expected a mapping of {cls.__name__} settings, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else f" (known: {', '.join(known)})"
                raise self.fail(path + (key,), f"unknown key{hint}")
        for key in required:
            if key not in data:
                raise self.fail(path, f"missing required key '{key}'")
        return data

    def number(self, data: dict, key: str, path: tuple, default: float, low: float, high: float,
               *, integer: bool = False, high_open: bool = False) -> float:
        value = data.get(key, default)
        if isinstance(value, str) and not integer and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", value.strip()):
            value = float(value)  # YAML 1.1 reads 2e-05 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            raise self.fail(path + (key,), f"must be {'a whole number' if integer else 'a number'}, got {value!r}")
        if value < low or value > high or (high_open and value >= high):
            bound = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
            raise self.fail(path + (key,), f"{value} is outside {bound}")
        return value

    def patterns(self, data: dict, key: str, path: tuple, required: bool = False,
                 regex: bool = False) -> tuple[str, ...]:
        value = data.get(key, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            kind = "node-name regexes" if regex else "parameter-name patterns (globs or 're:<regex>')"
            raise self.fail(path + (key,), f"must be a list of {kind}")
        if required and not value:
            raise self.fail(path + (key,), "needs at least one pattern")
        for n, pattern in enumerate(value):
            if regex or pattern.startswith("re:"):
                try:
                    re.compile(pattern if regex else pattern[3:])
                except re.error as exc:
                    raise self.fail(path + (key, n), f"bad regular expression: {exc}")
        return tuple(value)

    def imgsz(self, data: dict, path: tuple, default: int) -> int:
        value = self.number(data, "imgsz", path, default, 32, 8192, integer=True)
        if value % 32:
            raise self.fail(path + ("imgsz",), f"must be a multiple of 32, got {value}")
        return int(value)

    def _flag(self, data: dict, key: str, path: tuple, default: bool = True) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(path + (key,), "must be true or false")
        return value

    def choice(self, data: dict, key: str, path: tuple, default: str, options: tuple[str, ...]) -> str:
        value = data.get(key, default)
        if value not in options:
            raise self.fail(path + (key,), f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def recipe(self, data: Any) -> Recipe:
        data = self.keys(data if data is not None else {}, (), Recipe)
        modifiers = data.get("modifiers", [])
        if not isinstance(modifiers, list):
            raise self.fail(("modifiers",), "must be a list of modifiers")
        parsed = tuple(self.modifier(m, ("modifiers", i)) for i, m in enumerate(modifiers))
        final = [i for i, m in enumerate(parsed) if m.type in ("quantization", "ultralytics_export")]
        if sum(m.type == "channel_pruning" for m in parsed) > 1:
            raise self.fail(("modifiers",), "one channel_pruning step per recipe (its target is for the whole model)")
        if len(final) > 1:
            raise self.fail(("modifiers", final[1]), "a recipe ends in one artifact: one quantization or "
                                                     "ultralytics_export step, not both or several")
        finetune = self.finetune(data.get("finetune") or {}, ("finetune",))
        bn = self.keys(data.get("bn_recalibration") or {}, ("bn_recalibration",), BNRecalibration)
        if bn.get("source") is not None and not isinstance(bn["source"], str):
            raise self.fail(("bn_recalibration", "source"), "must be a path (images folder or video)")
        path = ("bn_recalibration",)
        recal = BNRecalibration(source=bn.get("source"),
                                images=int(self.number(bn, "images", path, 64, 1, 100000, integer=True)),
                                batch=int(self.number(bn, "batch", path, 8, 1, 1024, integer=True)),
                                imgsz=int(self.imgsz(bn, path, 640)))
        gradual_end = max([m.end_epoch for m in parsed
                           if m.type == "magnitude_pruning" and m.schedule == "gradual"] + [0.0])
        if gradual_end and finetune.epochs < gradual_end:
            raise self.fail(("finetune", "epochs"), f"a gradual schedule ends at epoch {gradual_end:g} but fine-tuning "
                                                    f"runs {finetune.epochs} epochs: set finetune.epochs >= {gradual_end:g}")
        steps = max([m.steps for m in parsed if m.type == "channel_pruning"] + [1])
        if steps > 1 and finetune.epochs < steps:
            raise self.fail(("finetune", "epochs"), f"a gradual channel schedule of {steps} steps recovers after each "
                                                    f"step: set finetune.epochs >= {steps}")
        version = self.number(data, "version", (), 1, 1, 1, integer=True)
        for key in ("name", "description"):
            if not isinstance(data.get(key, ""), str):
                raise self.fail((key,), "must be text")
        distill = Distillation()
        if data.get("distillation") is not None:
            spec = self.keys(data["distillation"], ("distillation",), Distillation)
            if spec.get("enabled", True) is not True and spec.get("enabled") is not False:
                raise self.fail(("distillation", "enabled"), "must be true or false")
            path = ("distillation",)
            distill = Distillation(enabled=bool(spec.get("enabled", True)),
                                   output=float(self.number(spec, "output", path, 1.0, 0, 1000)),
                                   feature=float(self.number(spec, "feature", path, 1.0, 0, 1000)),
                                   task=float(self.number(spec, "task", path, 1.0, 0, 1000)))
            if distill.enabled and distill.output + distill.feature == 0:
                raise self.fail(path, "output and feature are both 0: nothing to distil (remove the block)")
        return Recipe(modifiers=parsed, finetune=finetune, bn_recalibration=recal, distillation=distill,
                      name=data.get("name", ""),
                      description=data.get("description", ""), version=int(version))

    def modifier(self, data: Any, path: tuple) -> PruningModifier | QuantizationModifier | UltralyticsExport:
        got = data.get("type") if isinstance(data, dict) else data
        if got == "quantization":
            return self.quantization(data, path)
        if got == "ultralytics_export":
            return self.ultralytics_export(data, path)
        if got == "channel_pruning":
            return self.channel_pruning(data, path)
        if got != "magnitude_pruning":
            raise self.fail(path + ("type",), f"unknown modifier type {got!r}; known: magnitude_pruning, "
                                              "channel_pruning, quantization, ultralytics_export")
        data = self.keys(data, path, PruningModifier, required=("groups",))
        schedule = self.choice(data, "schedule", path, "one-shot", ("one-shot", "gradual"))
        start = self.number(data, "start_epoch", path, 0.0, 0, 1e6)
        end = self.number(data, "end_epoch", path, 0.0, 0, 1e6)
        if schedule == "gradual" and end <= start:
            raise self.fail(path + ("end_epoch",), f"end_epoch ({end}) must be after start_epoch ({start})")
        groups = data["groups"]
        if not isinstance(groups, list) or not groups:
            raise self.fail(path + ("groups",), "needs a list of at least one group (targets + sparsity)")
        return PruningModifier(
            groups=tuple(self.group(g, path + ("groups", i)) for i, g in enumerate(groups)),
            scope=self.choice(data, "scope", path, "local", ("local", "global")),
            mask=self.choice(data, "mask", path, "unstructured", ("unstructured", "block4")), schedule=schedule,
            start_epoch=float(start), end_epoch=float(end),
            update_frequency=float(self.number(data, "update_frequency", path, 1.0, 1e-6, 1e6)),
            init_sparsity=float(self.number(data, "init_sparsity", path, 0.05, 0, 1, high_open=True)),
            exclude=self.patterns(data, "exclude", path))

    def channel_pruning(self, data: dict, path: tuple) -> ChannelPruningModifier:
        from posebench.compress.channels import ALLOCATIONS, CRITERIA

        data = self.keys(data, path, ChannelPruningModifier)
        data = {k: v for k, v in data.items() if not (k in ("ratio", "macs") and v is None)}  # to_yaml writes nulls
        if ("ratio" in data) == ("macs" in data):
            raise self.fail(path, "needs exactly one target: ratio (fraction of each group's channels removed) or "
                                  "macs (fraction of the model's conv MACs kept)")
        if data.get("allocation") == "sensitivity" and "ratio" in data:
            raise self.fail(path + ("allocation",), "sensitivity spreads a MACs target over the groups: give macs, "
                                                    "not ratio")
        ratio = self.number(data, "ratio", path, 0.0, 0, 0.95) if "ratio" in data else None
        macs = self.number(data, "macs", path, 1.0, 0.05, 1.0) if "macs" in data else None
        if data.get("compensate") is True and data.get("reconstruct") is True:
            raise self.fail(path + ("reconstruct",), "compensate and reconstruct both correct the readers of removed "
                                                     "channels: reconstruct fits what compensate estimates, choose one")
        return ChannelPruningModifier(ratio=ratio, macs=macs,
                                      criterion=self.choice(data, "criterion", path, "magnitude", CRITERIA),
                                      round_to=int(self.number(data, "round_to", path, 16, 1, 256, integer=True)),
                                      exclude=self.patterns(data, "exclude", path, regex=True),
                                      imgsz=self.imgsz(data, path, 640), compensate=self._flag(data, "compensate", path, False),
                                      allocation=self.choice(data, "allocation", path, "uniform", ALLOCATIONS),
                                      reconstruct=self._flag(data, "reconstruct", path, False),
                                      reconstruct_images=int(self.number(data, "reconstruct_images", path, 32, 1, 10000,
                                                                         integer=True)),
                                      taylor_batches=int(self.number(data, "taylor_batches", path, 8, 1, 10000,
                                                                     integer=True)),
                                      steps=self._steps(data, path))

    def _steps(self, data: dict, path: tuple) -> int:
        steps = int(self.number(data, "steps", path, 1, 1, 100, integer=True))
        if steps > 1 and "macs" not in data:
            raise self.fail(path + ("steps",), "a gradual channel schedule lowers the MACs kept step by step: give "
                                               "macs, not ratio")
        return steps

    def ultralytics_export(self, data: dict, path: tuple) -> UltralyticsExport:
        data = self.keys(data, path, UltralyticsExport)
        fmt = self.choice(data, "format", path, "openvino", EXPORT_FORMATS)
        if not isinstance(data.get("int8", False), bool):
            raise self.fail(path + ("int8",), "must be true or false")
        if data.get("int8") and fmt != "openvino":
            raise self.fail(path + ("int8",), "Ultralytics' int8 export is compared for format: openvino")
        if data.get("calibration_source") is not None and not isinstance(data["calibration_source"], str):
            raise self.fail(path + ("calibration_source",), "must be a path")
        return UltralyticsExport(format=fmt, int8=bool(data.get("int8", False)), imgsz=tuple(self.size(data, path)),
                                 calibration_source=data.get("calibration_source"),
                                 calibration_images=int(self.number(data, "calibration_images", path, 128, 1, 100000,
                                                                    integer=True)))

    def size(self, data: dict, path: tuple) -> list[int]:
        size = data.get("imgsz", [640, 640])
        size = [size, size] if isinstance(size, int) else size
        if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v > 0 and v % 32 == 0
                                                                    for v in size)):
            raise self.fail(path + ("imgsz",), f"must be a multiple of 32 or [height, width] of them, got {size!r}")
        return size

    def quantization(self, data: dict, path: tuple) -> QuantizationModifier:
        from posebench.compress.quantize import CALIBRATION_METHODS, PRESETS
        from posebench.machine.isa import INT8_TARGETS

        data = self.keys(data, path, QuantizationModifier)
        size = self.size(data, path)
        if not isinstance(data.get("per_channel", True), bool):
            raise self.fail(path + ("per_channel",), "must be true or false")
        reduce_range = data.get("reduce_range", "auto")
        reduce_range = "auto" if reduce_range is None else reduce_range
        if not isinstance(reduce_range, bool) and reduce_range != "auto":
            raise self.fail(path + ("reduce_range",), "must be auto (chosen for target_isa), true or false")
        if data.get("calibration_source") is not None and not isinstance(data["calibration_source"], str):
            raise self.fail(path + ("calibration_source",), "must be a path")
        precision = self.choice(data, "precision", path, "int8", ("int8", "fp16"))
        method = self.choice(data, "method", path, "ptq", ("ptq", "qat"))
        for key, default in (("epochs", 1), ("lr0", 0.0005)):
            if method != "qat" and data.get(key, default) != default:
                raise self.fail(path + (key,), "only applies to method: qat (post-training quantization does not train)")
        if method == "qat" and precision != "int8":
            raise self.fail(path + ("method",), "qat trains int8 only; fp16 needs no training")
        if method == "qat" and data.get("bias_correction", "fast") != "fast":
            raise self.fail(path + ("bias_correction",), "only applies to method: ptq (qat trains the biases)")
        if method == "qat" and data.get("ignored_preset") == "none":
            raise self.fail(path + ("ignored_preset",), "qat keeps the box/keypoint decode in float always: use "
                                                        "yolo-pose-float-decode or yolo-pose-float-head")
        return QuantizationModifier(
            precision=precision, method=method, imgsz=tuple(size),
            epochs=int(self.number(data, "epochs", path, 1, 1, 10000, integer=True)),
            lr0=float(self.number(data, "lr0", path, 0.0005, 1e-9, 10)),
            calibration_source=data.get("calibration_source"),
            calibration_images=int(self.number(data, "calibration_images", path, 128, 1, 100000, integer=True)),
            calibration_method=self.choice(data, "calibration_method", path, "MinMax", CALIBRATION_METHODS),
            per_channel=data.get("per_channel", True), reduce_range=None if reduce_range == "auto" else reduce_range,
            target_isa=self.choice(data, "target_isa", path, "auto", ("auto", *INT8_TARGETS)),
            ignored_preset=self.choice(data, "ignored_preset", path, "yolo-pose-float-head", tuple(PRESETS)),
            ignored_add=self.patterns(data, "ignored_add", path, regex=True),
            ignored_remove=self.patterns(data, "ignored_remove", path, regex=True),
            bias_correction=self.choice(data, "bias_correction", path, "fast", ("fast", "full")))

    def group(self, data: Any, path: tuple) -> PruneGroup:
        data = self.keys(data, path, PruneGroup, required=("targets", "sparsity"))
        return PruneGroup(targets=self.patterns(data, "targets", path, required=True),
                          sparsity=float(self.number(data, "sparsity", path, 0, 0, 1, high_open=True)),
                          exclude=self.patterns(data, "exclude", path))

    def finetune(self, data: Any, path: tuple) -> FineTune:
        data = self.keys(data, path, FineTune)
        for key in ("data", "pseudo_labels"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise self.fail(path + (key,), "must be a path")
        if not isinstance(data.get("optimizer", "SGD"), str):
            raise self.fail(path + ("optimizer",), "must be an optimizer name (SGD, AdamW, ...)")
        return FineTune(epochs=int(self.number(data, "epochs", path, 0, 0, 10000, integer=True)),
                        lr0=float(self.number(data, "lr0", path, 0.002, 1e-9, 10)),
                        lrf=float(self.number(data, "lrf", path, 0.1, 1e-6, 1)),
                        optimizer=data.get("optimizer", "SGD"),
                        batch=int(self.number(data, "batch", path, 16, 1, 4096, integer=True)),
                        imgsz=int(self.imgsz(data, path, 640)),
                        data=data.get("data"), pseudo_labels=data.get("pseudo_labels"),
                        workers=int(self.number(data, "workers", path, 0, 0, 64, integer=True)),
                        mosaic=float(self.number(data, "mosaic", path, 1.0, 0, 1)),
                        batchnorm=self.choice(data, "batchnorm", path, "auto", ("auto", "frozen", "train")))
