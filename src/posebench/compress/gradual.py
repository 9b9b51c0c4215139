"""Gradual channel pruning: prune a step, recover, repeat (`channel_pruning.steps > 1`).

Step k of n keeps 1 - (1 - macs) x k / n of the original conv MACs: each step is one `compress` run on the previous
step's checkpoint, in OUT/step-k, pruning to the fraction of its *current* MACs that reaches that target and
recovering for its share of the fine-tuning epochs, distilled from the original dense model. The other modifiers
(one-shot masks, quantization, an export) run in the last step, on the final architecture. Each step is a folder
of its own, so an interrupted schedule resumes at the step it was in (and inside it, at its last epoch).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from posebench.compress.recipe import Recipe
from posebench.models import ModelSource, resolve_model


def step_targets(macs: float, steps: int) -> list[float]:
    """Fraction of the original conv MACs kept after each step (linear in the MACs removed)."""
    return [1 - (1 - macs) * k / steps for k in range(1, steps + 1)]


def step_epochs(epochs: int, steps: int) -> list[int]:
    """The fine-tuning epochs split over the steps, the remainder going to the last (it recovers the most)."""
    base = epochs // steps
    return [base] * (steps - 1) + [epochs - base * (steps - 1)]


def step_recipe(recipe: Recipe, *, relative_macs: float, epochs: int, last: bool) -> Recipe:
    """One step's recipe: the channel modifier pruning `relative_macs` of the current MACs, `epochs` of recovery;
    the other modifiers only in the last step."""
    modifiers = tuple(replace(m, macs=relative_macs, steps=1) if m.type == "channel_pruning" else m
                      for m in recipe.modifiers if last or m.type == "channel_pruning")
    return replace(recipe, modifiers=modifiers, finetune=replace(recipe.finetune, epochs=epochs),
                   name=f"{recipe.name or 'recipe'} (step)")


def compress_gradually(source: ModelSource, recipe: Recipe, out_dir: Path, *, options: Any,
                       compress_step: Callable[..., dict[str, Any]], on_progress: Any = None) -> dict[str, Any]:
    """Run a gradual channel schedule, each step through `compress_step` (`posebench.compress.run.compress`, one
    shot); returns the last step's summary with every step's record under "steps"."""
    say = on_progress or (lambda message: None)
    channel = recipe.channel_pruning()
    targets = step_targets(channel.macs, channel.steps)
    epochs = step_epochs(options.epochs if options.epochs is not None else recipe.finetune.epochs, channel.steps)
    # the original dense model teaches every step (a YAML source is built once, in step 1, as source.pt)
    teacher = options.teacher or (Path(source.location) if source.kind == "checkpoint" else None)
    current, kept, steps = source, 1.0, []
    for k, (target, n) in enumerate(zip(targets, epochs), 1):
        folder = out_dir / f"step-{k}"
        say(f"gradual channel pruning, step {k}/{len(targets)}: to {target:.0%} of the original MACs, "
            f"{n} recovery epoch(s)")
        step = step_recipe(recipe, relative_macs=target / kept, epochs=n, last=k == len(targets))
        done = folder / "sparsity.json"
        if (folder / "model.pt").is_file() and done.is_file():
            summary = json.loads(done.read_text())
            say(f"step {k} was done before: {folder}")
        else:
            summary = compress_step(current, step, folder, options=replace(options, epochs=None, teacher=teacher),
                               on_progress=lambda m, k=k: say(f"[step {k}] {m}"))
        if teacher is None and (folder / "source.pt").is_file():
            teacher = folder / "source.pt"
        if k == 1 and options.data is None and summary.get("data"):  # pseudo-labels: the dense model's, made once
            options = replace(options, data=Path(summary["data"]), pseudo_labels=None)
        kept *= summary["channel_pruning"]["macs_kept"]
        steps.append({"step": k, "target": target, "macs_kept": kept, "epochs": n, "out": str(folder)})
        current = resolve_model(summary["checkpoint"])
    shutil.copyfile(summary["checkpoint"], out_dir / "model.pt")
    result = summary.get("result") or {"kind": "checkpoint"}  # a step done by a posebench before results: its model.pt
    if result["kind"] == "checkpoint":  # the last step's bundle or export stays where it is
        result = {"kind": "checkpoint", "spec": str(out_dir / "model.pt")}
    final = {**summary, "checkpoint": str(out_dir / "model.pt"), "recipe": recipe.to_dict(), "steps": steps,
             "macs_kept": kept, "result": result}
    (out_dir / "sparsity.json").write_text(json.dumps(final, indent=2, default=str))
    return final
