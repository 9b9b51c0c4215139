"""How `posebench tune` makes each candidate: its recipes (channel pruning recovered by distillation, posebench's
int8 PTQ presets, Ultralytics' int8 export) applied to the model once, on the frames before the judging ones."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from posebench.compress.modifiers import ChannelPruningModifier, Distillation, FineTune, QuantizationModifier
from posebench.compress.peer_export import UltralyticsExport
from posebench.compress.recipe import Recipe
from posebench.errors import PosebenchError
from posebench.tune_plan import INT8_PRESETS, Candidate, Progress, TunePlan

# lr0 0.0005: measured on the street video, 0.002 moves even the unpruned model away from itself
# (self-distillation, one epoch: fidelity 0.9955 -> 0.87 with BatchNorm frozen), 0.0002 keeps it (0.993)
RECOVERY_LR0 = 0.0005
RECOVERY_BATCH = 8


def candidate_recipes(candidate: Candidate, *, calibration_images: int, recovery_epochs: int) -> list[tuple[str, Recipe]]:
    """The (label, recipe) steps that turn the dense model into `candidate` (none for the fp32 model itself)."""
    steps = []
    if candidate.macs < 1:
        label = f"m{round(candidate.macs * 100)}"
        steps.append((label, Recipe(
            name=label, description=f"channel pruning to {candidate.macs:.0%} of the conv MACs, spread over the groups "
                                    "by a damage scan, recovered by distillation from the dense model on the "
                                    "calibration frames",
            modifiers=(ChannelPruningModifier(macs=candidate.macs, allocation="sensitivity"),),
            finetune=FineTune(epochs=recovery_epochs, batch=RECOVERY_BATCH, lr0=RECOVERY_LR0),
            distillation=Distillation(enabled=True, task=0.0))))
    if candidate.precision in INT8_PRESETS:
        label, (preset, correction) = candidate.precision, INT8_PRESETS[candidate.precision]
        steps.append((label, Recipe(
            name=label, description=f"posebench int8 PTQ ({preset})",
            modifiers=(QuantizationModifier(precision="int8", calibration_images=calibration_images,
                                            ignored_preset=preset, bias_correction=correction),))))
    elif candidate.precision == "int8-ultralytics":
        steps.append(("int8-ultralytics", Recipe(
            name="int8-ultralytics", description="Ultralytics' own OpenVINO int8 export (NNCF)",
            modifiers=(UltralyticsExport(format="openvino", int8=True, calibration_images=calibration_images),))))
    return steps


class CandidateBuilder:
    """Builds each candidate once (cached under OUT/builds, resumable) and remembers why a build failed."""

    def __init__(self, plan: TunePlan, eval_from: int, cache: Path, say: Progress):
        self.plan, self.eval_from, self.cache, self.say = plan, eval_from, cache, say
        self.specs: dict[Candidate, str | None] = {}
        self.errors: dict[Candidate, str] = {}

    def calibration_folder(self) -> Path:
        """Frames before `eval_from` (every n-th, at most `max_calibration`) and the extra images, as an image
        folder: it calibrates int8 and trains pruned models; it never judges."""
        from posebench.compress.images import calibration_dataset
        from posebench.evaluate.validate import iter_frames

        folder = self.plan.out / "calibration"
        marker = folder / "frames.json"
        if marker.is_file():
            return folder / "images"
        stride = max(1, math.ceil(self.eval_from / self.plan.max_calibration))

        def frames():  # noqa: ANN202 - frames 0, stride, ... below eval_from, then the extra images
            yield from iter_frames(self.plan.footage, stride=stride, max_frames=math.ceil(self.eval_from / stride))
            for extra in self.plan.extra_calibration:
                yield from iter_frames(extra)

        calibration_dataset(frames(), folder, (17, 3))
        marker.write_text(json.dumps({"footage": str(self.plan.footage), "frames_before": self.eval_from,
                                      "stride": stride, "extra": [str(p) for p in self.plan.extra_calibration]}))
        return folder / "images"

    def build(self, candidate: Candidate) -> str | None:
        """The model spec of `candidate` (checkpoint, bundle or exported IR), built once; None if it failed."""
        from posebench.compress.chain import ChainInputs, apply_recipes

        if candidate in self.specs:
            return self.specs[candidate]
        calibration = self.calibration_folder()
        inputs = ChainInputs(pseudo_labels=calibration, calibration=calibration, imgsz=candidate.imgsz,
                             cache=self.cache)
        images = min(self.plan.max_calibration, len(list(calibration.iterdir())))
        spec = self.plan.source.spec
        chain = ""
        if candidate.start:  # a shipped model: its checkpoint is where the recipes start
            from posebench.models import resolve_model

            spec, chain = str(resolve_model(candidate.start).path), candidate.start
        try:
            for label, recipe in candidate_recipes(candidate, calibration_images=images,
                                                   recovery_epochs=self.plan.recovery_epochs):
                chain = f"{chain}-{label}" if chain else label
                sized = label.startswith("int8")  # static artifacts depend on the size; pruning does not
                folder = self.plan.out / "builds" / (f"{chain}-{candidate.imgsz[0]}x{candidate.imgsz[1]}"
                                                     if sized else chain)
                self.say(f"building {candidate.name}: {label}", 0, 0)
                recipes = self.plan.out / "recipes" / f"{label}.yaml"  # what was built, for the reader
                recipes.parent.mkdir(parents=True, exist_ok=True)
                recipes.write_text(recipe.to_yaml())
                spec = apply_recipes(spec, [(label, recipe)], folder, inputs)
        except PosebenchError as exc:
            self.errors[candidate], spec = f"building {candidate.name} failed: {exc}", None
        except Exception as exc:  # recorded; the search goes on without it
            self.errors[candidate], spec = f"building {candidate.name} failed: {type(exc).__name__}: {exc}", None
        self.specs[candidate] = spec
        return spec

    def deploy(self, winner: dict[str, Any]) -> Path:
        """Copy the winner to OUT/winner/: a bundle folder `bench`, `val` (and `stream`) take as --model."""
        from posebench.export import ArtifactStore
        from posebench.export.artifact import Artifact
        from posebench.export.bundle import write_bundle
        from posebench.models import resolve_model

        candidate = Candidate.of_row(winner)
        spec = Path(self.build(candidate) or "")  # recorded builds are cached: nothing is rebuilt
        dest = self.plan.out / "winner"
        if dest.exists():
            shutil.rmtree(dest)
        source = resolve_model(str(spec) if str(spec) != "default" else None)
        if source.kind == "bundle":
            shutil.copytree(spec, dest)
            return dest
        if source.kind == "artifact":  # Ultralytics' IR folder
            folder = spec.parent if spec.suffix == ".xml" else spec
            shutil.copytree(folder, dest / folder.name)
            return dest / folder.name
        dest.mkdir(parents=True)
        store = ArtifactStore(source, self.cache)
        copied = []
        for fmt in ("onnx", "openvino"):
            artifact = store.artifact(fmt, candidate.imgsz)
            files = [artifact.path] + ([artifact.path.with_suffix(".bin")] if fmt == "openvino" else [])
            for f in files + [Path(f"{artifact.path}.meta.json")]:
                shutil.copyfile(f, dest / f.name)
            copied.append(Artifact.load(dest / artifact.path.name))
        checkpoint = dest / "model.pt"
        shutil.copyfile(store.checkpoint(), checkpoint)
        write_bundle(dest, tuple(copied), name=self.plan.source.name, variant=candidate.name, method=None,
                     checkpoint=checkpoint, recipe={"tune": candidate.name})
        return dest
