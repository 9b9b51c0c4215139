"""The compression methods a recipe can name, one registration each (`METHODS`): the `type:` word, the modifier
dataclass (its fields are the recipe's keys, their defaults the defaults, its `__post_init__` the checks), when its
stage runs and where the stage is.

Adding a method is one module (its modifier and its stage, see `posebench.compress.peer_export`) plus one line in
`METHODS`. A modifier whose fields are plain (true/false, numbers, text, lists of patterns, an image size) needs no
parser code: `RecipeParser.settings` reads it from the dataclass; older methods with rules across keys name their
own parser method (`parse`). Stages are named as "module:function" and imported when they run: they pull in
torch, Ultralytics or NNCF, which reading a recipe must not."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from posebench.compress.modifiers import ChannelPruningModifier, PruningModifier, QuantizationModifier
from posebench.compress.peer_export import UltralyticsExport

PHASES = ("model", "deploy")  # model: changes the model before any training, in registry order; deploy: makes the
#                              one artifact a recipe ends in, from the saved checkpoint


@dataclass(frozen=True)
class Method:
    """One compression method: its recipe word, modifier, phase and stage (`stage(run, modifiers)`: a
    `CompressRun` and the recipe's modifiers of this type, in order)."""

    type: str
    modifier: type
    phase: str
    stage: str  # "posebench.compress.<module>:<function>"
    parse: str | None = None  # a RecipeParser method, for rules the dataclass cannot state per key

    def run_stage(self, run: Any, modifiers: list[Any]) -> None:
        module, function = self.stage.split(":")
        getattr(importlib.import_module(module), function)(run, modifiers)


METHODS: dict[str, Method] = {m.type: m for m in (
    Method("channel_pruning", ChannelPruningModifier, "model", "posebench.compress.run:channel_pruning_stage",
           parse="channel_pruning"),
    Method("magnitude_pruning", PruningModifier, "model", "posebench.compress.run:magnitude_pruning_stage",
           parse="magnitude_pruning"),
    Method("ultralytics_export", UltralyticsExport, "deploy", "posebench.compress.peer_export:export_stage"),
    Method("quantization", QuantizationModifier, "deploy", "posebench.compress.run:quantization_stage",
           parse="quantization"),
)}


def stages(recipe: Any, phase: str) -> list[tuple[Method, list[Any]]]:
    """The registered methods of `phase` that `recipe` uses, in registry order, each with its modifiers."""
    out = []
    for method in METHODS.values():
        found = [m for m in recipe.modifiers if m.type == method.type]
        if method.phase == phase and found:
            out.append((method, found))
    return out
