"""COCO's official keypoint AP/AR through faster-coco-eval (pycocotools-compatible), on files.

Predictions are written as a standard COCO results JSON, so anyone can re-score them with
pycocotools; `tests/test_val.py` checks that both give the same numbers.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from posebench.evaluate.data import Dataset, _image_size
from posebench.evaluate.metrics import AREA_FACTOR
from posebench.evaluate.uncertainty import CocoMatches

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def ground_truth_json(entries: Iterable[tuple[int, tuple[int, int], np.ndarray, np.ndarray]], *,
                      kpt_count: int, path: Path) -> Path:
    """Write (image_id, (height, width), boxes xyxy, keypoints) entries as COCO keypoints JSON.

    The object scale (`area`) is approximated as box area x 0.53, as Ultralytics does.
    """
    images, annotations = [], []
    for image_id, (h, w), boxes, keypoints in entries:
        images.append({"id": int(image_id), "file_name": f"{image_id}.jpg", "height": int(h), "width": int(w)})
        for n, (box, kpts) in enumerate(zip(boxes, keypoints)):
            x1, y1, x2, y2 = (float(v) for v in box)
            flat = np.zeros((kpt_count, 3), np.float32)
            flat[:, :kpts.shape[1]] = kpts
            if kpts.shape[1] == 2:
                flat[:, 2] = 2
            annotations.append({
                "id": int(image_id) * 1000 + n + 1, "image_id": int(image_id), "category_id": 1, "iscrowd": 0,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1) * AREA_FACTOR,
                "num_keypoints": int((flat[:, 2] > 0).sum()), "keypoints": [round(float(v), 3) for v in flat.ravel()],
            })
    categories = [{"id": 1, "name": "person", "supercategory": "person",
                   "keypoints": [f"kp{i}" for i in range(kpt_count)], "skeleton": []}]
    info = {"description": "COCO keypoints ground truth written by posebench from Ultralytics pose labels",
            "area": f"approximated as box w x h x {AREA_FACTOR} (Ultralytics' stand-in for the segment area, which "
                    "the labels do not carry); COCO's official area is the segmentation mask's"}
    path.write_text(json.dumps({"info": info, "images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def dataset_ground_truth_json(dataset: Dataset, path: Path) -> Path:
    """The dataset's labels as COCO keypoints JSON (for datasets that come without one)."""
    entries = ((s.image_id, _image_size(s.image) or (0, 0), s.boxes, s.keypoints) for s in dataset.samples)
    return ground_truth_json(entries, kpt_count=dataset.kpt_shape[0], path=path)


def evaluate_keypoints(gt_json: Path, predictions: list[dict[str, Any]], *,
                       sigmas: np.ndarray | None = None) -> dict[str, float]:
    """COCOeval(iouType='keypoints') on a GT file and a list of COCO result dicts."""
    from faster_coco_eval import COCO, COCOeval_faster

    if not predictions:
        return {name: 0.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        dt = gt.loadRes(predictions)
        kwargs = {"kpt_oks_sigmas": sigmas} if sigmas is not None else {}
        ev = COCOeval_faster(gt, dt, iouType="keypoints", **kwargs)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats[:10])}


def coco_matches(gt_json: Path, predictions: list[dict[str, Any]], image_ids: list[int], *,
                 sigmas: np.ndarray | None = None) -> CocoMatches:
    """COCOeval's per-image keypoint matches (area 'all', the last maxDets), in the order of `image_ids`.

    pycocotools' evaluate() keeps them (faster-coco-eval's C++ does not expose them); the bootstrap re-accumulates
    them under resampled image weights (`posebench.evaluate.uncertainty`)."""
    from pycocotools.coco import COCO as PyCOCO
    from pycocotools.cocoeval import COCOeval

    position = {int(i): n for n, i in enumerate(image_ids)}
    thresholds = 10
    positives = np.zeros(len(image_ids), dtype=np.int32)
    image, score, matched, ignored = [], [], [], []
    with contextlib.redirect_stdout(io.StringIO()):
        gt = PyCOCO(str(gt_json))
        ev = None
        if predictions:
            dt = gt.loadRes(predictions)
            ev = COCOeval(gt, dt, iouType="keypoints")
            if sigmas is not None:
                ev.params.kpt_oks_sigmas = np.asarray(sigmas)
            ev.params.imgIds = sorted(position)
            ev.evaluate()
    if ev is None:  # no detection anywhere: only the ground truths count
        for ann in gt.anns.values():
            if int(ann["image_id"]) in position and not ann.get("iscrowd") and ann.get("num_keypoints", 1) > 0:
                positives[position[int(ann["image_id"])]] += 1
        empty = np.zeros((0, thresholds), bool)
        return CocoMatches(np.zeros(0, np.int32), np.zeros(0, np.float32), empty, empty, positives)
    p = ev.params
    max_det = p.maxDets[-1]
    for n, image_id in enumerate(p.imgIds):  # category 0, area range 0 ('all') come first in evalImgs
        e = ev.evalImgs[n]
        if e is None:
            continue
        positives[position[int(image_id)]] = int((np.asarray(e["gtIgnore"]) == 0).sum())
        d = len(e["dtScores"][:max_det])
        image += [position[int(image_id)]] * d
        score += list(e["dtScores"][:max_det])
        matched.append(np.asarray(e["dtMatches"])[:, :max_det].T > 0)
        ignored.append(np.asarray(e["dtIgnore"])[:, :max_det].T.astype(bool))
    stack = lambda parts: np.concatenate(parts) if parts else np.zeros((0, len(p.iouThrs)), bool)  # noqa: E731
    return CocoMatches(np.array(image, np.int32), np.array(score, np.float32), stack(matched), stack(ignored),
                       positives)
