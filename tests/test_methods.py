"""Compression methods are registered (`posebench.compress.methods`): a method is one module (its modifier and its
stage) plus one line in METHODS; the recipe parser reads a plain modifier from its dataclass, names the line of a
wrong key or value, and `compress` runs the stage in its phase. Shown here with a small real method defined in this
file: weight rounding (each conv's filters fake-quantized in place to `bits` uniform levels per output channel)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from posebench.compress.methods import METHODS, Method, stages
from posebench.compress.modifiers import SettingError
from posebench.compress.recipe import Recipe, RecipeError


@dataclass(frozen=True)
class WeightRounding:
    """Round every conv's filters to `bits` uniform levels per output channel (symmetric), in place."""

    type: str = "weight_rounding"
    bits: int = 8
    exclude: tuple[str, ...] = ()  # regexes on conv module names left as they are

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 16:
            raise SettingError("bits", f"{self.bits} is outside [2, 16]")


def weight_rounding_stage(run: Any, modifiers: list[WeightRounding]) -> None:
    import re

    for modifier in modifiers:
        levels = 2 ** (modifier.bits - 1) - 1
        for name, m in run.model.named_modules():
            if isinstance(m, torch.nn.Conv2d) and not any(re.search(p, name) for p in modifier.exclude):
                w = m.weight.data
                scale = w.abs().flatten(1).amax(1).clamp(min=1e-12)[:, None, None, None] / levels
                m.weight.data = torch.round(w / scale) * scale
    run.say(f"weights rounded to {modifiers[-1].bits} bits")


@pytest.fixture
def registered(monkeypatch):
    """The one registration line, made for the test's duration."""
    monkeypatch.setitem(METHODS, "weight_rounding",
                        Method("weight_rounding", WeightRounding, "model", f"{__name__}:weight_rounding_stage"))


def test_every_registered_modifier_reads_back_from_its_own_yaml():
    for method in METHODS.values():
        assert method.phase in ("model", "deploy")
        assert [f.name for f in dataclasses.fields(method.modifier)][0] in ("type", "groups")
    recipe = Recipe.from_yaml("modifiers:\n  - type: ultralytics_export\n    int8: true\n    imgsz: 320\n")
    (export,) = recipe.modifiers
    assert (export.format, export.int8, export.imgsz, export.calibration_images) == ("openvino", True, (320, 320), 128)
    assert [m.type for m, _ in stages(recipe, "deploy")] == ["ultralytics_export"] and not stages(recipe, "model")


def test_a_new_method_is_read_from_its_dataclass_and_checked_by_it(registered):
    recipe = Recipe.from_yaml("modifiers:\n  - type: weight_rounding\n    exclude: ['^model\\.0\\.']\n")
    assert recipe.modifiers == (WeightRounding(exclude=(r"^model\.0\.",)),)  # bits: the dataclass's default
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    with pytest.raises(RecipeError, match=r"line 3: modifiers\[0\]\.bits: 40 is outside \[2, 16\]"):
        Recipe.from_yaml("modifiers:\n  - type: weight_rounding\n    bits: 40\n")
    with pytest.raises(RecipeError, match=r"line 3: modifiers\[0\]\.bits: must be a whole number"):
        Recipe.from_yaml("modifiers:\n  - type: weight_rounding\n    bits: 4.5\n")
    with pytest.raises(RecipeError, match=r"line 3: .*unknown key \(did you mean \"bits\"\?\)"):
        Recipe.from_yaml("modifiers:\n  - type: weight_rounding\n    bitz: 4\n")


def test_compress_runs_a_registered_stage_in_its_phase(registered, tmp_path):
    from posebench.compress.run import compress
    from posebench.models import resolve_model
    from posebench.ultralytics_adapter import load_yolo

    recipe = Recipe.from_yaml("modifiers:\n  - type: weight_rounding\n    bits: 3\n    exclude: ['^model\\.0\\.']\n")
    said: list[str] = []
    summary = compress(resolve_model("yolo11n-pose.yaml"), recipe, tmp_path, on_progress=said.append)
    assert summary["result"] == {"kind": "checkpoint", "spec": summary["checkpoint"]}  # what a chain loads next
    net = load_yolo(summary["checkpoint"]).model
    convs = dict((n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d))
    assert "weights rounded to 3 bits" in said
    for name in ("model.1.conv", "model.23.cv4.0.0.conv"):
        per_channel = [torch.unique(row).numel() for row in convs[name].weight.detach().flatten(1)]
        assert max(per_channel) <= 7  # 3 bits, symmetric: -3..3 times the channel's scale
    assert max(torch.unique(row).numel() for row in convs["model.0.conv"].weight.detach().flatten(1)) > 7
