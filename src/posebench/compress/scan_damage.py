"""How much one step of channel pruning hurts, as the sensitivity scan measures it: `OutputDamage` (label-free: how
far the head's raw outputs move from the dense model's on a few images, the distillation output terms) or
`APDamage` (how many points of pose mAP50-95 the step loses on labelled images the judge never sees).

Why both: the output distance on 8 images at 320 is cheap but blind to what a channel is worth in AP. Measured on
yolo11n-pose (benchmarks/results/bn-settle): it ranks the P4 class branch's last hidden conv cheap, and cutting it
from 64 to 16 channels instead of 48 costs 3.2 points of coco-pose-val at unchanged MACs: the 80 % -> 75 % cliff.
Scoring each step by the metric itself costs one validation per scanned level (about 150 on yolo11n-pose)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn


def head_outputs(net: nn.Module, images: torch.Tensor) -> Any:
    """The raw head outputs of `net` on `images` (YOLO26: its one-to-many head's)."""
    with torch.no_grad():
        out = net.eval()(images)[1]
    return out["one2many"] if isinstance(out, dict) and "one2many" in out else out


def damage(net: nn.Module, dense_out: dict[str, Any], images: torch.Tensor) -> float:
    """How far `net`'s raw head outputs moved from the dense model's (the distillation output terms, which are
    zero-gradient at equality; their floor is subtracted by the caller)."""
    from posebench.compress.distill import output_terms

    head = net.model[-1]
    terms = output_terms(head_outputs(net, images), dense_out, reg_max=int(getattr(head, "reg_max", 16)),
                         ndim=int(head.kpt_shape[1]))
    return float(sum(terms.values()))


class OutputDamage:
    """How far a pruned copy's raw head outputs on `images` (a float batch) moved from `dense`'s, the value at
    equality subtracted."""

    def __init__(self, dense: nn.Module, images: torch.Tensor):
        self.images = images
        self.reference = head_outputs(copy.deepcopy(dense), images)
        self.floor = damage(copy.deepcopy(dense), self.reference, images)

    def __call__(self, net: nn.Module) -> float:
        return max(0.0, damage(net, self.reference, self.images) - self.floor)


class APDamage:
    """Points of pose mAP50-95 a pruned copy loses against `dense` on labelled `samples` (letterboxed once at
    `imgsz`, run in batches of `batch`, decoded and matched as `posebench val` does)."""

    def __init__(self, dense: nn.Module, samples: list[Any], kpt_shape: tuple[int, int],
                 imgsz: tuple[int, int] = (640, 640), batch: int = 16):
        from posebench.errors import InvalidInputError
        from posebench.evaluate.preprocess import Preprocessor
        from posebench.evaluate.validate import read_image

        if not samples:
            raise InvalidInputError("damage: ap scores each scan step on labelled images: none were given")
        prepare = Preprocessor(imgsz)
        prepared = [prepare(read_image(s.image)) for s in samples]
        self.inputs = torch.from_numpy(np.concatenate([p[0] for p in prepared]))
        self.letterboxes = [p[1] for p in prepared]
        self.samples, self.kpt_shape, self.batch = samples, kpt_shape, batch
        self.reference = self.score(dense)

    def score(self, net: nn.Module) -> float:
        """Pose mAP50-95 of `net` on the samples."""
        from posebench.evaluate.metrics import PoseStats, keypoint_sigmas
        from posebench.evaluate.postprocess import NMSConfig, decode

        net.eval()
        stats = PoseStats(sigmas=keypoint_sigmas(self.kpt_shape[0]))
        with torch.inference_mode():
            outputs = [net(self.inputs[i:i + self.batch])[0].numpy() for i in range(0, len(self.samples), self.batch)]
        outputs = np.concatenate(outputs)
        for n, sample in enumerate(self.samples):
            det = decode(outputs[n:n + 1], kpt_shape=self.kpt_shape, letterbox=self.letterboxes[n], config=NMSConfig())
            stats.add(pred_boxes=det.boxes, pred_scores=det.scores, pred_classes=det.classes, pred_kpts=det.keypoints,
                      gt_boxes=sample.boxes, gt_classes=sample.classes, gt_kpts=sample.keypoints, key=sample.image_id)
        return float(stats.compute()["pose"].map50_95)

    def __call__(self, net: nn.Module) -> float:
        return max(0.0, 100.0 * (self.reference - self.score(net)))


def labelled_samples(data: Any, count: int, skip: int = 0) -> list[Any]:
    """`count` labelled samples spread over a data YAML's train split (after its first `skip`: those the output scan
    and the reconstruction take their images from), in a fixed order."""
    from posebench.errors import InvalidInputError
    from posebench.evaluate.data import load_dataset

    samples = [s for s in load_dataset(data, split="train").samples[skip:] if len(s.boxes)]
    if not samples:
        raise InvalidInputError(f"{data}: no labelled image with a person after the first {skip}")
    n = min(count, len(samples))
    return [samples[round(i * (len(samples) - 1) / max(n - 1, 1))] for i in range(n)]
