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

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from posebench.compress.modifiers import (  # noqa: F401 - the parts are part of the recipe's interface
    BNRecalibration,
    ChannelPruningModifier,
    Distillation,
    FineTune,
    PruneGroup,
    PruningModifier,
    QuantizationModifier,
    RecipeError,
)
from posebench.compress.peer_export import UltralyticsExport
from posebench.compress.recipe_parser import RecipeParser
from posebench.compress.yamlmarks import load_with_lines


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
        return RecipeParser(source, lines).recipe(data, cls)

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
