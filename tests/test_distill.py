"""Distillation from the dense model: label-free recovery through Ultralytics' trainer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from posebench.compress.channels import ChannelPlan, prune_channels_
from posebench.compress.distill import DistillationLoss, feature_term, output_terms
from posebench.compress.recipe import Recipe, RecipeError
from posebench.ultralytics_adapter import load_yolo


def _kd(student: torch.nn.Module, teacher: torch.nn.Module, images: torch.Tensor) -> float:
    """Output distillation terms (class, box, keypoints) of `student` against `teacher` on `images` (eval mode)."""
    with torch.no_grad():
        s, t = student.eval()(images)[1], teacher.eval()(images)[1]
    assert float(feature_term(s["feats"], t["feats"])) > 0
    return float(sum(output_terms(s, t, reg_max=16, ndim=3).values()))


def _images(root, size: int = 128) -> torch.Tensor:
    from posebench.evaluate.preprocess import letterbox, to_batch
    from posebench.evaluate.validate import read_image

    paths = sorted((root / "images" / "train2017").iterdir())[:8]
    return torch.from_numpy(np.concatenate([to_batch(letterbox(read_image(p), (size, size))[0]) for p in paths]))


@pytest.mark.slow
@pytest.mark.train
def test_distillation_without_labels_moves_the_pruned_model_toward_the_dense_one(mini, default_source, tmp_path):
    from posebench.compress.run import CompressOptions, compress

    dense = load_yolo(default_source.path).model.float()
    pruned = copy.deepcopy(dense)
    prune_channels_(pruned, ChannelPlan(ratio=0.5), (96, 96))  # what the recipe below does, before training
    images = _images(mini)
    before = _kd(pruned, dense, images)
    recipe = Recipe.from_yaml("modifiers:\n  - type: channel_pruning\n    ratio: 0.5\n    imgsz: 96\n"
                              "finetune:\n  epochs: 4\n  imgsz: 128\n  batch: 4\n  lr0: 0.01\n"
                              "distillation:\n  task: 0\n")
    said: list[str] = []
    summary = compress(default_source, recipe, tmp_path,
                       options=CompressOptions(data=mini / "coco-pose-mini.yaml", cache_dir=tmp_path / "cache"),
                       on_progress=said.append)
    # the recovery says how it goes: each epoch with its time, the task and distillation losses and an ETA
    epochs = [m for m in said if " done in " in m]
    assert [m.split(" done")[0] for m in epochs] == [f"epoch {n}/4" for n in range(1, 5)], said
    assert "kd_feat" in epochs[0] and "pose_loss" in epochs[0] and epochs[-1].endswith("ETA 0m00s"), epochs
    tuned = load_yolo(summary["checkpoint"]).model.float()
    after = _kd(tuned, dense, images)
    assert after < 0.95 * before, (before, after)  # measured: 2.31 -> 2.06
    assert not isinstance(getattr(tuned, "criterion", None), DistillationLoss)  # no teacher inside the checkpoint
    header = (tmp_path / "train" / "results.csv").read_text().splitlines()[0]
    assert "train/kd_feat" in header and "train/pose_loss" in header  # logged beside the task items


@pytest.mark.parametrize("text, message", [
    ("distillation:\n  output: 0\n  feature: 0\n", "nothing to distil"),
    ("distillation:\n  teacher: big.pt\n", "unknown key"),
    ("distillation:\n  task: -1\n", r"task: -1 is outside"),
])
def test_broken_distillation_blocks_name_the_line(text, message):
    with pytest.raises(RecipeError, match=message):
        Recipe.from_yaml(text)


def test_distillation_block_round_trips():
    recipe = Recipe.from_yaml("distillation:\n  task: 0\n  feature: 0.5\n")
    assert recipe.distillation.enabled and recipe.distillation.task == 0 and recipe.distillation.feature == 0.5
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    assert not Recipe.from_yaml("name: x\n").distillation.enabled


@pytest.mark.slow
@pytest.mark.train
def test_fine_tuning_keeps_batchnorm_statistics_frozen_unless_masks_move(mini, default_source, tmp_path):
    """Measured on the street video: one epoch of self-distillation at lr0 0.002 moved the dense model to fidelity
    0.65 with train-mode BatchNorm (batch statistics of a few mosaic images) and 0.87 frozen; frozen at 0.0002: 0.99."""
    from posebench.compress.run import CompressOptions, compress

    def running_means(model: torch.nn.Module) -> torch.Tensor:
        return torch.cat([m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)])

    dense = load_yolo(default_source.path).model.float()
    text = ("finetune:\n  epochs: 1\n  imgsz: 128\n  batch: 4\n  lr0: 0.0002\n  batchnorm: {bn}\n"
            "distillation:\n  task: 0\n")
    moved = {}
    for bn in ("auto", "train"):
        recipe = Recipe.from_yaml(text.format(bn=bn))
        assert recipe.frozen_batchnorm() == (bn == "auto")
        summary = compress(default_source, recipe, tmp_path / bn,
                           options=CompressOptions(data=mini / "coco-pose-mini.yaml", cache_dir=tmp_path / "cache"))
        tuned = load_yolo(summary["checkpoint"]).model.float()
        moved[bn] = float((running_means(tuned) - running_means(dense)).abs().max())
    assert moved["auto"] < 1e-2 < moved["train"], moved  # fp16 checkpoints round the frozen statistics only
    gradual = Recipe.from_yaml("modifiers:\n  - type: magnitude_pruning\n    schedule: gradual\n    end_epoch: 1\n"
                               "    groups:\n      - targets: ['model.*.weight']\n        sparsity: 0.5\n"
                               "finetune:\n  epochs: 1\n")
    assert not gradual.frozen_batchnorm()  # masks move: statistics must follow them
    with pytest.raises(RecipeError, match="batchnorm"):
        Recipe.from_yaml("finetune:\n  batchnorm: fixed\n")


@pytest.mark.slow
@pytest.mark.train
def test_recovery_interrupted_and_resumed_ends_where_an_uninterrupted_one_does(mini, tmp_path):
    """A recovery killed mid-run (SIGKILL, after its second epoch was saved) and started again with the same command
    resumes from Ultralytics' last.pt: the same epochs, each once, on the same learning-rate schedule, and the same
    pruned model; a different recipe in that folder is refused."""
    import csv
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: resumable\nmodifiers:\n  - type: channel_pruning\n    ratio: 0.5\n    imgsz: 96\n"
                      "finetune:\n  epochs: 3\n  imgsz: 96\n  batch: 8\n  lr0: 0.01\n"
                      "distillation:\n  task: 0\n")

    def command(out):  # noqa: ANN001, ANN202
        return [sys.executable, "-m", "posebench", "compress", "--recipe", str(recipe), "--data",
                str(mini / "coco-pose-mini.yaml"), "--out", str(out)]

    whole = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True, timeout=600, cwd=REPO)
    assert whole.returncode == 0, whole.stderr
    cut = tmp_path / "cut"
    proc = subprocess.Popen(command(cut), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO)
    last = cut / "train" / "weights" / "last.pt"
    for line in proc.stderr:  # the second epoch is over: wait for its checkpoint, then kill the run mid-epoch 3
        if "epoch 2/3 done" in line:
            break
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 1:
                break
        except Exception:  # not written yet, or being written
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut / "model.pt").exists()
    again = subprocess.run(command(cut), capture_output=True, text=True, timeout=600, cwd=REPO)
    assert again.returncode == 0, again.stderr
    assert "resuming the interrupted recovery" in again.stderr and "resuming at epoch 3/3" in again.stderr
    rows = lambda out: list(csv.DictReader(open(out / "train" / "results.csv")))  # noqa: E731
    a, b = rows(tmp_path / "whole"), rows(cut)
    assert [int(float(r["epoch"])) for r in b] == [1, 2, 3] == [int(float(r["epoch"])) for r in a]
    lr = [k for k in a[0] if k.startswith("lr/")]
    assert [float(r[k]) for r in b for k in lr] == pytest.approx([float(r[k]) for r in a for k in lr])
    count = lambda out: sum(p.numel() for p in load_yolo(out / "model.pt").model.parameters())  # noqa: E731
    assert count(cut) == count(tmp_path / "whole")
    # the same folder with another recipe: refused, not mixed
    (cut / "model.pt").unlink()
    recipe.write_text(recipe.read_text().replace("ratio: 0.5", "ratio: 0.25"))
    other = subprocess.run(command(cut), capture_output=True, text=True, timeout=600, cwd=REPO)
    assert other.returncode == 2 and "holds an interrupted recovery of another recipe" in other.stderr


@pytest.mark.slow
@pytest.mark.train
def test_a_gradual_channel_schedule_reaches_its_target_step_by_step(mini, default_source, tmp_path):
    """channel_pruning with steps: 2 prunes to 85 % then 70 % of the original MACs, recovering after each step
    (distilled from the original dense model); the final model keeps at most the target, and each step is smaller."""
    from posebench.compress.channel_groups import conv_macs
    from posebench.compress.gradual import step_epochs, step_targets
    from posebench.compress.run import CompressOptions, compress

    assert step_targets(0.7, 3) == pytest.approx([0.9, 0.8, 0.7]) and step_epochs(5, 2) == [2, 3]
    recipe = Recipe.from_yaml("name: gradual\nmodifiers:\n  - type: channel_pruning\n    macs: 0.7\n    steps: 2\n"
                              "    imgsz: 96\nfinetune:\n  epochs: 2\n  imgsz: 96\n  batch: 8\n"
                              "distillation:\n  task: 0\n")
    said: list[str] = []
    summary = compress(default_source, recipe, tmp_path,
                       options=CompressOptions(data=mini / "coco-pose-mini.yaml", cache_dir=tmp_path / "cache"),
                       on_progress=said.append)
    dense = conv_macs(load_yolo(default_source.path).model.float(), (96, 96))
    macs = [conv_macs(load_yolo(tmp_path / f"step-{k}" / "model.pt").model.float(), (96, 96)) for k in (1, 2)]
    final = conv_macs(load_yolo(summary["checkpoint"]).model.float(), (96, 96))
    assert dense > macs[0] > macs[1] == final
    assert final / dense <= 0.70 + 1e-9 and final / dense > 0.6, final / dense  # reaches the target, not far below
    assert [s["target"] for s in summary["steps"]] == pytest.approx([0.85, 0.70])
    assert summary["macs_kept"] == pytest.approx(final / dense, rel=1e-6)
    assert any("step 2/2" in m for m in said) and sum(" done in " in m for m in said) == 2
    with pytest.raises(RecipeError, match="steps"):
        Recipe.from_yaml("modifiers:\n  - type: channel_pruning\n    ratio: 0.3\n    steps: 2\n"
                         "finetune:\n  epochs: 2\n")
