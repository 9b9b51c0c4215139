"""Knowledge distillation from the dense model: recovery that needs no labels.

The compressed student learns to reproduce the dense teacher's raw head outputs on the training images, at every
anchor (not only where a label says a person is):
- **class**: binary cross-entropy against the teacher's sigmoid scores;
- **box**: KL divergence between the DFL distributions of each box side (YOLOv8/YOLO11, `reg_max` 16), or
  smooth-L1 on the distances (YOLO26, `reg_max` 1), weighted by the teacher's score;
- **keypoints**: smooth-L1 on the raw x, y offsets and BCE on the visibility logits, weighted by the teacher's
  score (what matters is where the teacher sees a person);
- **features**: mean squared error between the neck features the head reads (channel pruning keeps their
  width, see posebench.compress.channels), each level normalised by the teacher's feature scale.
YOLO26 heads distil both branches (one-to-many and one-to-one).

It plugs into Ultralytics' trainer through the model's criterion (`model.loss` calls `model.criterion(preds,
batch)`): `DistillationLoss` wraps the task loss; `task: 0` makes the labels (real or the dense model's pseudo-labels)
serve only the data loader and the logged task items, i.e. distillation alone. The terms are logged beside the task loss
items (`kd_cls`, `kd_box`, `kd_kpt`, `kd_feat`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DistillWeights:
    """How much each term counts (per image, like Ultralytics' task loss items)."""

    output: float = 1.0  # class + box + keypoint terms
    feature: float = 1.0  # neck features
    task: float = 1.0  # the model's own loss on the labels (0: distillation only)


def _branches(preds: Any) -> list[dict[str, Any]]:
    if isinstance(preds, dict) and "one2many" in preds:
        return [preds["one2many"], preds["one2one"]]
    return [preds]


def output_terms(student: dict[str, Any], teacher: dict[str, Any], *, reg_max: int, ndim: int) -> dict[str, torch.Tensor]:
    """The output-level terms for one head branch (tensors (B, C, anchors))."""
    t_scores = teacher["scores"].sigmoid()
    weight = t_scores.amax(1)  # (B, A): where the teacher sees something
    norm = weight.sum().clamp(min=1e-6)
    cls = F.binary_cross_entropy_with_logits(student["scores"], t_scores, reduction="mean")
    b, _, a = student["boxes"].shape
    if reg_max > 1:
        s_dist = student["boxes"].view(b, 4, reg_max, a).log_softmax(2)
        t_dist = teacher["boxes"].view(b, 4, reg_max, a).softmax(2)
        box = (F.kl_div(s_dist, t_dist, reduction="none").sum(2).mean(1) * weight).sum() / norm
    else:
        box = (F.smooth_l1_loss(student["boxes"], teacher["boxes"], reduction="none").mean(1) * weight).sum() / norm
    s_k, t_k = student["kpts"], teacher["kpts"]
    k = s_k.shape[1] // ndim
    s_k, t_k = s_k.view(b, k, ndim, a), t_k.view(b, k, ndim, a)
    kpt = (F.smooth_l1_loss(s_k[:, :, :2], t_k[:, :, :2], reduction="none").mean((1, 2)) * weight).sum() / norm
    if ndim == 3:
        vis = F.binary_cross_entropy_with_logits(s_k[:, :, 2], t_k[:, :, 2].sigmoid(), reduction="none").mean(1)
        kpt = kpt + (vis * weight).sum() / norm
    return {"kd_cls": cls, "kd_box": box, "kd_kpt": kpt}


def feature_term(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Mean squared error of each neck level, normalised by the teacher's mean square there."""
    terms = []
    for s, t in zip(student, teacher):
        if s.shape != t.shape:
            raise ValueError(f"distillation: student feature {tuple(s.shape)} vs teacher {tuple(t.shape)}: the "
                             "features the head reads must keep their width (channel pruning with between: true "
                             "narrows them: exclude the groups that feed the head, or set the feature weight to 0)")
        terms.append(F.mse_loss(s, t) / t.pow(2).mean().clamp(min=1e-6))
    return torch.stack(terms).mean()


class DistillationLoss:
    """A criterion for Ultralytics' trainer: task loss (weighted) + distillation from `teacher`."""

    def __init__(self, student: nn.Module, teacher: nn.Module, weights: DistillWeights = DistillWeights()):
        self.student, self.weights = student, weights
        self.teacher = copy.deepcopy(teacher).float().eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.task: Any = None
        head = student.model[-1]
        self.reg_max, self.ndim = int(getattr(head, "reg_max", 16)), int(head.kpt_shape[1])

    def __call__(self, preds: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.task is None:  # the model's own criterion, built once the trainer has set model.args
            self.task = self.student.init_criterion()
        images = batch["img"]
        device = images.device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            teacher = self.teacher(images)[1]  # eval mode: (decoded, raw predictions)
        terms: dict[str, torch.Tensor] = {}
        pairs = list(zip(_branches(preds), _branches(teacher)))
        for s, t in pairs:
            for key, value in output_terms(s, t, reg_max=self.reg_max, ndim=self.ndim).items():
                terms[key] = terms.get(key, 0) + value / len(pairs)
        terms["kd_feat"] = feature_term(_branches(preds)[0]["feats"], _branches(teacher)[0]["feats"])
        size = images.shape[0]
        kd = self.weights.output * (terms["kd_cls"] + terms["kd_box"] + terms["kd_kpt"]) + \
            self.weights.feature * terms["kd_feat"]
        total = kd * size
        task_loss, items = self.task(preds, batch)  # always: its items are what validation reports too
        if self.weights.task > 0:
            total = total + self.weights.task * task_loss
        return total, {**items, **{k: v.detach() for k, v in terms.items()}}


def attach(student: nn.Module, teacher: nn.Module, weights: DistillWeights = DistillWeights()) -> DistillationLoss:
    """Make `student.loss` (what Ultralytics' trainer calls) distil from `teacher`."""
    student.criterion = DistillationLoss(student, teacher, weights)
    return student.criterion


def distill_during_training(yolo: Any, teacher: nn.Module, spec: Any) -> None:
    """Register with an `ultralytics.YOLO` before `.train()`: the trained model's criterion becomes a
    `DistillationLoss` when training starts (after the trainer made its EMA copy, so neither the EMA nor any
    checkpoint carries the teacher)."""
    weights = DistillWeights(output=spec.output, feature=spec.feature, task=spec.task)

    def on_train_start(trainer: Any) -> None:
        model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
        attach(model, teacher, weights)

    yolo.add_callback("on_train_start", on_train_start)
