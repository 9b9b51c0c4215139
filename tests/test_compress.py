"""Recipes and pruning: validation with line numbers, exact sparsity in checkpoint and ONNX, the
real Ultralytics trainer with masks enforced, label-free recovery, every runtime runs the result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, run_cli, run_here
from posebench.compress.prune import prune_one_shot_, resolve_targets, sparsity_table
from posebench.compress.recipe import PruningModifier, PruneGroup, Recipe, RecipeError
from posebench.ultralytics_adapter import load_yolo

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.fixture(scope="module")
def assets() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


# ---- recipes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipes_round_trip_and_fit_yolov8_and_yolo11(path, default_source):
    recipe = Recipe.load(path)
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    assert Recipe.from_yaml(Recipe.from_yaml(recipe.to_yaml()).to_yaml()).to_yaml() == recipe.to_yaml()
    for model in (str(default_source.path), "yolov8s-pose.yaml"):
        targets = resolve_targets(recipe, load_yolo(model).model)
        names = [t.name for t in targets]
        assert not any(".dfl." in n or n.startswith("model.0.") for n in names)
        assert any(".cv4." in n for n in names) == path.stem.endswith("-m")  # -m: pose head pruned too


def test_thesis_variants_are_shipped():
    stems = {p.stem for p in RECIPES}
    assert {f"yolo-pose-{v}" for v in ("p50", "p55", "p65", "p70", "p55-m", "p70-m")} <= stems


BROKEN = [
    ("modifiers:\n  - type: magnitude_pruning\n    groups:\n      - targets: ['model.*.weight']\n        sparsty: 0.5\n",
     r"line 5: modifiers\[0\]\.groups\[0\]\.sparsty: unknown key \(did you mean \"sparsity\"\?\)"),
    ("modifiers:\n  - type: magnitude_pruning\n    groups:\n      - targets: ['model.*.weight']\n        sparsity: 1.0\n",
     r"line 5: .*sparsity: 1.0 is outside \[0, 1\)"),
    ("modifiers:\n  - type: magnitude_pruning\n    schedule: gradual\n    start_epoch: 4\n    end_epoch: 2\n"
     "    groups: [{targets: ['model.*.weight'], sparsity: 0.5}]\nfinetune: {epochs: 5}\n",
     r"line 5: modifiers\[0\]\.end_epoch: end_epoch \(2\) must be after start_epoch \(4\)"),
    ("modifiers:\n  - type: magnitude_pruning\n    schedule: gradual\n    end_epoch: 8\n"
     "    groups: [{targets: ['model.*.weight'], sparsity: 0.5}]\nfinetune: {epochs: 3}\n",
     r"finetune\.epochs: a gradual schedule ends at epoch 8"),
    ("modifiers:\n  - type: movement_pruning\n", r"line 2: .*unknown modifier type 'movement_pruning'"),
    ("modifiers:\n  - type: magnitude_pruning\n    scope: everywhere\n    groups: [{targets: [x], sparsity: 0.1}]\n",
     r"line 3: modifiers\[0\]\.scope: must be one of local, global"),
    ("modifiers:\n  - type: magnitude_pruning\n    groups: [{targets: ['re:model.(['], sparsity: 0.1}]\n",
     r"bad regular expression"),
    ("modifiers:\n  - type: magnitude_pruning\n    mask: block8\n    groups: [{targets: [x], sparsity: 0.1}]\n",
     r"line 3: modifiers\[0\]\.mask: must be one of unstructured, block4"),
    ("modifiers: [\n", r"not valid YAML"),
    ("bn_recalibration: {imgsz: 100}\n", r"line 1: bn_recalibration\.imgsz: must be a multiple of 32"),
    ("bn_recalibration: {before_finetune: maybe}\n", r"bn_recalibration\.before_finetune: must be true or false"),
]


@pytest.mark.parametrize("text,message", BROKEN)
def test_broken_recipe_fails_naming_the_line(text, message):
    with pytest.raises(RecipeError, match=message):
        Recipe.from_yaml(text, source="r.yaml")


def test_target_matching_no_parameter_fails_before_any_work(default_source):
    recipe = Recipe(modifiers=(PruningModifier(groups=(PruneGroup(targets=("backbone.*.weight",), sparsity=0.5),)),))
    with pytest.raises(RecipeError, match=r"groups\[0\]: targets \['backbone\.\*\.weight'\].*match no"):
        resolve_targets(recipe, load_yolo(default_source.path).model)


def test_cubic_schedule():
    m = PruningModifier(groups=(), schedule="gradual", start_epoch=2, end_epoch=10, update_frequency=1,
                        init_sparsity=0.05)
    values = [m.sparsity_at(0.7, e) for e in np.arange(0, 12, 0.25)]
    assert m.sparsity_at(0.7, 1.9) == 0 and m.sparsity_at(0.7, 2) == pytest.approx(0.05)
    assert m.sparsity_at(0.7, 10) == 0.7 and m.sparsity_at(0.7, 50) == 0.7
    assert m.sparsity_at(0.7, 6.5) == pytest.approx(0.7 + (0.05 - 0.7) * (1 - 4 / 8) ** 3)  # stepped at epoch 6
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_with_epochs_scales_the_schedule():
    recipe = Recipe.load(REPO / "recipes" / "yolo-pose-p50.yaml")
    short = recipe.with_epochs(2)
    m, m0 = short.pruning()[0], recipe.pruning()[0]
    assert short.finetune.epochs == 2
    assert m.end_epoch == pytest.approx(m0.end_epoch * 2 / recipe.finetune.epochs)
    assert m.update_frequency == pytest.approx(m0.update_frequency * 2 / recipe.finetune.epochs)


# ---- one-shot pruning: exact sparsity, survives export, runs everywhere ----------------------------------

def _exactly(rows: list[dict], expected: dict[str, float]) -> list[str]:
    """Names whose sparsity differs from the target by more than one weight."""
    return [r["name"] for r in rows if abs(r["zeros"] - round(expected[r["name"]] * r["size"])) > 0]


@pytest.mark.parametrize("scope", ["local", "global"])
def test_one_shot_sparsity_is_exact(scope, default_source):
    model = load_yolo(default_source.path).model.float()
    recipe = Recipe(modifiers=(PruningModifier(scope=scope, exclude=("model.0.*", "*.dfl.*"), groups=(
        PruneGroup(targets=("re:model\\.[1-9]\\..*",), sparsity=0.3),
        PruneGroup(targets=("model.*.weight",), exclude=("re:model\\.[1-9]\\..*",), sparsity=0.7))),))
    targets = resolve_targets(recipe, model)
    prune_one_shot_(model, recipe)
    rows = sparsity_table(model, [t.name for t in targets])
    if scope == "local":
        assert _exactly(rows, {t.name: t.final for t in targets}) == []
    else:
        for gi, target in ((0, 0.3), (1, 0.7)):
            members = [r for r, t in zip(rows, targets) if t.group == gi]
            size = sum(r["size"] for r in members)
            assert sum(r["zeros"] for r in members) == round(target * size)
            assert len({round(r["sparsity"], 3) for r in members}) > 1  # global: layers differ


@pytest.mark.parametrize("scope", ["local", "global"])
def test_block4_zeroes_whole_blocks_of_four_input_channels_smallest_first(scope, default_source):
    model = load_yolo(default_source.path).model.float()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    recipe = Recipe(modifiers=(PruningModifier(scope=scope, mask="block4", exclude=("model.0.*", "*.dfl.*"), groups=(
        PruneGroup(targets=("model.*.weight",), sparsity=0.6),)),))
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    targets = resolve_targets(recipe, model)
    prune_one_shot_(model, recipe)
    params = dict(model.named_parameters())
    kept_min, cut_max, blocks, zero_blocks = [], [], 0, 0
    for t in targets:
        w, w0 = params[t.name].detach(), before[t.name]
        moved, moved0 = w.movedim(1, -1), w0.movedim(1, -1)  # (out, kh, kw, in)
        for start in range(0, moved.shape[-1], 4):
            block, block0 = moved[..., start:start + 4], moved0[..., start:start + 4]
            score, zero = block0.abs().mean(-1), (block == 0).all(-1) & (block0 != 0).any(-1)
            assert (block[~zero] == block0[~zero]).all(), f"{t.name}: a kept block of 4 changed"
            blocks, zero_blocks = blocks + zero.numel(), zero_blocks + int(zero.sum())
            kept_min.append(score[~zero].min() if (~zero).any() else torch.tensor(float("inf")))
            cut_max.append(score[zero].max() if zero.any() else torch.tensor(0.0))
        if scope == "local":
            n = sum(((moved[..., s:s + 4] == 0).all(-1)).numel() for s in range(0, moved.shape[-1], 4))
            z = sum(int((moved[..., s:s + 4] == 0).all(-1).sum()) for s in range(0, moved.shape[-1], 4))
            assert z == round(0.6 * n), t.name
            kept_min, cut_max = [min(kept_min)], [max(cut_max)]
            assert cut_max[0] <= kept_min[0], f"{t.name}: a larger block was cut before a smaller one"
            kept_min, cut_max = [], []
    if scope == "global":
        assert zero_blocks == round(0.6 * blocks)
        assert max(cut_max) <= min(kept_min)  # one ranking across the group
    unstructured = sparsity_table(model, [t.name for t in targets])
    assert 0.55 < sum(r["zeros"] for r in unstructured) / sum(r["size"] for r in unstructured) < 0.65


def _check_checkpoint_and_onnx(checkpoint: Path, recipe: Recipe, tmp_path: Path) -> None:
    from posebench.export import ArtifactStore, onnx_weight_sparsity
    from posebench.models import resolve_model
    from posebench.ultralytics_adapter import load_torch_model

    model = load_yolo(checkpoint).model.float()
    targets = resolve_targets(recipe, model)
    expected = {t.name: t.final for t in targets}
    rows = sparsity_table(model, list(expected))
    assert _exactly(rows, expected) == [], "checkpoint sparsity differs from the recipe"
    fused = dict(load_torch_model(checkpoint).named_parameters())  # after BatchNorm folding
    for r in rows:
        assert int((fused[r["name"]] == 0).sum()) == r["zeros"], f"{r['name']} changed when BN was folded"
    store = ArtifactStore(resolve_model(checkpoint), tmp_path / "cache")
    onnx_zeros = onnx_weight_sparsity(store.get("onnx", (96, 128)))
    for r in rows:
        assert onnx_zeros[r["name"]]["zeros"] == r["zeros"], f"{r['name']}: zeros lost in ONNX export"
    assert store.get("onnx", (96, 128)).with_suffix(".onnx.meta.json").is_file()


def _runs_everywhere(checkpoint: Path, tmp_path: Path) -> None:
    from posebench.export import ArtifactStore
    from posebench.measure import fixed_input
    from posebench.models import resolve_model
    from posebench.runtimes import CPU_RUNTIMES, backend_class, create_backend

    store = ArtifactStore(resolve_model(checkpoint), tmp_path / "cache")
    batch = fixed_input((1, 3, 96, 128))
    outputs = {}
    for runtime in CPU_RUNTIMES:
        if runtime == "null":
            continue
        with create_backend(runtime, store.get(backend_class(runtime).artifact_format, (96, 128)), threads=1) as b:
            outputs[runtime] = b.infer(batch)[0]
    ref = outputs["torch"]
    for runtime, out in outputs.items():
        assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-3, runtime


@pytest.mark.slow
def test_one_shot_cli_checkpoint_onnx_and_runtimes(tmp_path):
    recipe_path = REPO / "recipes" / "yolo-pose-oneshot-p50.yaml"
    result = run_cli("compress", "--recipe", str(recipe_path), "--out", str(tmp_path / "out"),
                     "--json", str(tmp_path / "c.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "c.json").read_text())[0]
    assert record["targeted_sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert "model.1.conv.weight" in result.stdout  # the per-layer table
    checkpoint = tmp_path / "out" / "model.pt"
    from ultralytics import YOLO

    assert YOLO(str(checkpoint)).task == "pose"  # a normal Ultralytics checkpoint
    _check_checkpoint_and_onnx(checkpoint, Recipe.load(recipe_path), tmp_path)
    _runs_everywhere(checkpoint, tmp_path)


# ---- gradual pruning through the real trainer ----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.train
def test_gradual_pruning_with_pseudo_labels_through_the_trainer(assets, tmp_path, default_source):
    from posebench.compress.run import CompressOptions, compress

    recipe = Recipe.load(REPO / "recipes" / "yolo-pose-p55-m.yaml").with_epochs(2)
    summary = compress(default_source, recipe, tmp_path / "out",
                       options=CompressOptions(pseudo_labels=assets, imgsz=96, batch=2))
    assert summary["pseudo_labels"]["images"] == 2 and summary["pseudo_labels"]["instances"] >= 4
    trainer_last = tmp_path / "out" / "train" / "weights" / "last.pt"
    # the trainer's own checkpoint (the EMA weights) already has the final sparsity: masks were enforced
    model = load_yolo(trainer_last).model.float()
    targets = resolve_targets(recipe, model)
    assert _exactly(sparsity_table(model, [t.name for t in targets]), {t.name: t.final for t in targets}) == []
    _check_checkpoint_and_onnx(Path(summary["checkpoint"]), recipe, tmp_path)
    _runs_everywhere(Path(summary["checkpoint"]), tmp_path)


@pytest.mark.train
def test_gradual_schedule_updates_masks_during_training(assets, tmp_path, default_source):
    from posebench.compress.finetune import PruningCallbacks
    from posebench.compress.recovery import make_pseudo_dataset
    from posebench.compress.images import source_frames as _frames
    from posebench.evaluate.validate import Predictor
    from posebench.runtimes.pytorch import TorchBackend

    with TorchBackend(default_source.path, threads=2) as backend:
        data, _ = make_pseudo_dataset(Predictor(backend, (96, 96), (17, 3)), _frames(assets, 10), tmp_path / "d")
    recipe = Recipe.from_yaml(
        "modifiers:\n  - type: magnitude_pruning\n    schedule: gradual\n    start_epoch: 0\n    end_epoch: 2\n"
        "    update_frequency: 0.5\n    init_sparsity: 0.1\n    exclude: ['model.0.*', '*.dfl.*']\n"
        "    groups: [{targets: ['model.*.weight'], sparsity: 0.6}]\nfinetune: {epochs: 2, batch: 1}\n")
    yolo = load_yolo(default_source.path)
    seen = []
    callbacks = PruningCallbacks(recipe)
    yolo.add_callback("on_train_epoch_end",
                      lambda trainer: seen.append(float((trainer.model.model[5].conv.weight == 0).float().mean())))
    from posebench.compress.finetune import train

    train(yolo, recipe, data=data, out_dir=tmp_path / "t", epochs=2, imgsz=96, batch=1, callbacks=callbacks)
    assert callbacks.updates >= 4  # init + updates every half epoch
    assert seen[0] < seen[1] == pytest.approx(0.6, abs=1e-3)  # sparsity rose during training, ended on target


@pytest.mark.slow
@pytest.mark.train
def test_fine_tuning_on_labelled_data(coco_pose_mini, tmp_path, default_source):
    from posebench.compress.run import CompressOptions, compress

    data_root = tmp_path / "coco-pose-mini"
    shutil.copytree(coco_pose_mini, data_root)  # Ultralytics writes label caches beside the data
    text = (data_root / "coco-pose-mini.yaml").read_text().replace("val: images/val", "val: images/train2017")
    (data_root / "train.yaml").write_text(text)
    recipe = Recipe.load(REPO / "recipes" / "yolo-pose-p50.yaml").with_epochs(1)
    summary = compress(default_source, recipe, tmp_path / "out",
                       options=CompressOptions(data=data_root / "train.yaml", imgsz=96, batch=8))
    assert summary["epochs"] == 1 and summary["targeted_sparsity"] > 0.45
    _check_checkpoint_and_onnx(Path(summary["checkpoint"]), recipe, tmp_path)


# ---- BatchNorm re-calibration ---------------------------------------------------------------------------

def test_bn_recalibration_refreshes_running_statistics(assets, default_source):
    from posebench.compress.recovery import recalibrate_bn_
    from posebench.evaluate.validate import iter_frames

    model = load_yolo(default_source.path).model.float()
    prune_one_shot_(model, Recipe.load(REPO / "recipes" / "yolo-pose-oneshot-p50.yaml"))
    bn = model.model[2].cv1.bn
    before = bn.running_mean.clone()
    used = recalibrate_bn_(model, (img for _, img in iter_frames(assets)), imgsz=(160, 160), batch=1)
    assert used == 2 and not torch.allclose(before, bn.running_mean)
    assert torch.isfinite(bn.running_var).all() and bn.momentum == 0.03 and not bn.training


# ---- the command line -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--recipe", "no/such/recipe.yaml"], "does not exist"),
    (["--recipe", str(REPO / "recipes" / "yolo-pose-p50.yaml")], "fine-tuning needs data"),
    (["--recipe", str(REPO / "recipes" / "yolo-pose-p50.yaml"), "--data", "no/data.yaml"], "does not exist"),
])
def test_compress_bad_input_is_one_clear_line(args, message, tmp_path):
    result = run_here("compress", *args, "--out", str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_broken_recipe_through_the_cli_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modifiers:\n  - type: magnitude_pruning\n    groups:\n      - targets: [model.*.weight]\n"
                   "        sparsity: 0.5\n        exlude: [model.0.*]\n")
    result = run_here("compress", "--recipe", str(bad), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "line 6" in result.stderr and 'did you mean "exclude"' in result.stderr


def test_the_shipped_recovery_recipe_keeps_batchnorm_as_it_is():
    """The recipe behind the shipped 80 % model: no re-calibration before its BatchNorm-frozen distillation."""
    recipe = Recipe.load(REPO / "recipes" / "yolo-pose-channels-m80-recovered.yaml")
    assert recipe.bn_recalibration.before_finetune is False and recipe.frozen_batchnorm()
    assert recipe.distillation.enabled and recipe.distillation.task == 0.0
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    assert Recipe.from_yaml("finetune: {epochs: 1}\n").bn_recalibration.before_finetune is False  # the default
    street = Recipe.load(REPO / "recipes" / "yolo-pose-channels-s75-distill.yaml")  # measured with it, keeps it
    assert street.bn_recalibration.before_finetune is True
