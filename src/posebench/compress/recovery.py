"""Cheap recovery steps that need no labels: BatchNorm re-calibration and pseudo-labelled data.

- `recalibrate_bn_`: after one-shot pruning the BatchNorm running statistics describe the dense
  network; forward passes over calibration images refresh them (a cumulative average).
- `make_pseudo_dataset`: the dense model labels the user's images or video frames; its confident
  detections become an Ultralytics pose dataset the pruned model is fine-tuned on. This answers the
  thesis's open problem: without a labelled dataset one was limited to one-shot pruning.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from posebench.errors import InvalidInputError
from posebench.evaluate.preprocess import letterbox, to_batch

COCO_FLIP_IDX = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


@torch.no_grad()
def recalibrate_bn_(model: torch.nn.Module, images: Iterable[np.ndarray], *, imgsz: tuple[int, int],
                    batch: int = 8) -> int:
    """Refresh every BatchNorm's running mean/var from `images` (BGR); returns the images used."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training = model.training
    model.eval()
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over all calibration batches
        m.train()
    used, pending = 0, []
    dtype = next(model.parameters()).dtype
    for image in images:
        pending.append(to_batch(letterbox(image, imgsz)[0]))
        if len(pending) == batch:
            model(torch.from_numpy(np.concatenate(pending)).to(dtype))
            used, pending = used + len(pending), []
    if pending:
        model(torch.from_numpy(np.concatenate(pending)).to(dtype))
        used += len(pending)
    for m, (momentum, training) in zip(norms, saved):
        m.momentum = momentum
        m.train(training)
    model.train(was_training)
    if used == 0:
        raise InvalidInputError("BatchNorm re-calibration got no image")
    return used


def make_pseudo_dataset(predictor, frames: Iterable[tuple[str, np.ndarray]], out_dir: Path, *,  # noqa: ANN001
                        conf: float = 0.5, kpt_conf: float = 0.5) -> tuple[Path, dict[str, int]]:
    """Label frames with `predictor` (a dense model) and write an Ultralytics pose dataset; returns its YAML."""
    k, d = predictor.kpt_shape
    images_dir, labels_dir = out_dir / "images" / "train", out_dir / "labels" / "train"
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    counts = {"images": 0, "instances": 0}
    for n, (_, image) in enumerate(frames):
        det = predictor(image)
        keep = det.scores >= conf
        h, w = image.shape[:2]
        lines = []
        for box, kpts in zip(det.clipped_boxes((h, w))[keep], det.keypoints[keep]):
            x1, y1, x2, y2 = box
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            values = [0, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
            for kp in kpts:
                visible = d < 3 or kp[2] >= kpt_conf
                x, y = (float(np.clip(kp[0] / w, 0, 1)), float(np.clip(kp[1] / h, 0, 1))) if visible else (0.0, 0.0)
                values += [x, y] + ([2.0 if visible else 0.0] if d == 3 else [])
            lines.append(" ".join(f"{v:.6f}" if i else "0" for i, v in enumerate(values)))
        name = f"{n:06d}"
        cv2.imwrite(str(images_dir / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        (labels_dir / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        counts["images"] += 1
        counts["instances"] += len(lines)
    if counts["images"] == 0:
        raise InvalidInputError("no image or frame to pseudo-label")
    spec = {"path": str(out_dir.resolve()), "train": "images/train", "val": "images/train", "kpt_shape": [k, d],
            "names": {0: "person"}}
    if (k, d) == (17, 3):
        spec["flip_idx"] = COCO_FLIP_IDX
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    return data_yaml, counts
