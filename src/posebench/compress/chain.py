"""Recipes applied one after another to a model (a study's variant, a tune candidate): each step's output is the
next step's input, each step resumable from its folder's `done.json`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from posebench.compress.recipe import Recipe
from posebench.compress.run_state import CompressResult


@dataclass(frozen=True)
class ChainInputs:
    """What the steps learn from and the size static artifacts are built at (None: as each recipe says)."""

    finetune: Path | None = None  # labelled data YAML for fine-tuning
    pseudo_labels: Path | None = None  # else images / video the dense model labels
    bn_recalibration: Path | None = None  # images re-calibrating BatchNorm after one-shot pruning
    calibration: Path | None = None  # int8 calibration images
    epochs: int | None = None  # overrides the recipes' training epochs
    imgsz: tuple[int, int] | None = None  # static artifacts (quantization, Ultralytics' export) built at this size
    cache: Path | None = None  # where fp32 exports are cached


def apply_recipes(model: str, steps: Sequence[tuple[str, Recipe | None]], out: Path, inputs: ChainInputs) -> str:
    """Apply `steps` ((label, recipe), in order) to `model`, step n in OUT/<n>-<label>; returns the model spec the
    last step made (checkpoint, bundle folder or exported artifact). A step already done is read back (its recipe
    may be None)."""
    from posebench.compress.run import CompressOptions, compress
    from posebench.models import resolve_model

    spec = model
    for n, (label, recipe) in enumerate(steps):
        step_dir = out / f"{n}-{label}"
        marker = step_dir / "done.json"
        if marker.is_file():
            spec = json.loads(marker.read_text())["spec"]
            continue
        if recipe is None:
            raise ValueError(f"step {n} ({label}) is not done and has no recipe")
        if inputs.imgsz is not None and (recipe.quantization() or recipe.ultralytics_export()):
            recipe = replace(recipe, modifiers=tuple(
                replace(m, imgsz=inputs.imgsz) if m.type in ("quantization", "ultralytics_export") else m
                for m in recipe.modifiers))
        one_shot_pruning = bool(recipe.pruning()) and not recipe.finetune.epochs
        options = CompressOptions(data=inputs.finetune,
                                  pseudo_labels=None if inputs.finetune else inputs.pseudo_labels,
                                  bn_recalibration=inputs.bn_recalibration if one_shot_pruning else None,
                                  epochs=inputs.epochs if recipe.finetune.epochs or recipe.qat() else None,
                                  calibration=inputs.calibration, cache_dir=inputs.cache)
        summary = compress(resolve_model(None if spec == "default" else spec), recipe, step_dir, options=options)
        spec = CompressResult.from_json(summary["result"]).spec
        marker.write_text(json.dumps({"spec": spec, "summary_timings": summary["timings"]}))
    return spec
