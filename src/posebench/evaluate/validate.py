"""The validator: every runtime judged by the same pre-processing, decode, NMS and metric code.

Per image: read (OpenCV, BGR), letterbox to the artifact's static (height, width), the runtime
backend produces the raw output, numpy decode + NMS, map back to the original image, match
against ground truth. At the end: box and pose P, R, mAP50, mAP50-95 (Ultralytics' definitions)
and, where a COCO keypoints JSON exists or can be written, COCO's official keypoint AP/AR.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posebench.errors import InvalidInputError
from posebench.evaluate.cocoeval import coco_matches, dataset_ground_truth_json, evaluate_keypoints, ground_truth_json
from posebench.evaluate.data import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Dataset, list_images
from posebench.evaluate.metrics import PoseStats, keypoint_sigmas
from posebench.evaluate.postprocess import Detections, NMSConfig, decode
from posebench.evaluate.preprocess import Preprocessor
from posebench.evaluate.uncertainty import CONFIDENCE, RESAMPLES, SEED, bootstrap_intervals
from posebench.runtimes.base import Backend

UNCERTAINTY = {"resamples": RESAMPLES, "seed": SEED, "confidence": CONFIDENCE}


@dataclass
class StageTimes:
    """Wall time spent per stage, summed over images (seconds)."""

    read: float = 0.0
    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0

    def per_image_ms(self, n: int) -> dict[str, float]:
        return {k: 1000 * v / max(n, 1) for k, v in self.__dict__.items()}


@dataclass
class Predictor:
    """Runs one backend on images with the shared pipeline."""

    backend: Backend
    imgsz: tuple[int, int]
    kpt_shape: tuple[int, int]
    nms: NMSConfig = field(default_factory=NMSConfig)
    end2end: bool | None = None  # the artifact's declared head (None: inferred from the output shape)
    times: StageTimes = field(default_factory=StageTimes)
    inferences: int = 0
    preprocess: str = "reference"  # or "vectorised", or "fused" (a backend created with input="nhwc_u8_bgr")

    def __post_init__(self) -> None:
        self._prepare = Preprocessor(self.imgsz, self.preprocess)

    def __call__(self, image: np.ndarray) -> Detections:
        t0 = time.perf_counter()
        batch, lb = self._prepare(image)
        t1 = time.perf_counter()
        outputs = self.backend.infer(batch)
        t2 = time.perf_counter()
        detections = decode(outputs[0], kpt_shape=self.kpt_shape, letterbox=lb, config=self.nms,
                            end2end=self.end2end)
        t3 = time.perf_counter()
        self.times.preprocess += t1 - t0
        self.times.inference += t2 - t1
        self.times.postprocess += t3 - t2
        self.inferences += 1
        return detections


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidInputError(f"{path}: unreadable or corrupt image")
    return image


def coco_results(image_id: int, det: Detections, shape: tuple[int, int], category_id: int = 1) -> list[dict]:
    """Detections as COCO keypoint results (boxes clipped to the image, keypoints x, y, score)."""
    boxes = det.clipped_boxes(shape)
    out = []
    for box, score, kpts in zip(boxes, det.scores, det.keypoints):
        flat = np.zeros((kpts.shape[0], 3), np.float32)
        flat[:, :kpts.shape[1]] = kpts
        out.append({"image_id": int(image_id), "category_id": category_id,
                    "bbox": [round(float(box[0]), 3), round(float(box[1]), 3), round(float(box[2] - box[0]), 3),
                             round(float(box[3] - box[1]), 3)],
                    "keypoints": [round(float(v), 3) for v in flat.ravel()], "score": round(float(score), 5)})
    return out


def validate(predictor: Predictor, dataset: Dataset, *, predictions_json: Path | None = None,
             on_image: Callable[[int, int], None] | None = None,
             uncertainty: dict[str, Any] | None = UNCERTAINTY) -> dict[str, Any]:
    """Score `predictor` on `dataset`: Ultralytics-style metrics plus COCO keypoint AP when possible, each with a
    bootstrap interval over images, and the per-image matches that paired comparisons need (`uncertainty`: the
    bootstrap's resamples / seed / confidence; None leaves both out)."""
    dataset.check_model(predictor.kpt_shape)
    sigmas = keypoint_sigmas(dataset.kpt_shape[0])
    stats = PoseStats(sigmas=sigmas)
    results: list[dict[str, Any]] = []
    problems = list(dataset.problems)
    start = time.perf_counter()
    for n, sample in enumerate(dataset.samples):
        t0 = time.perf_counter()
        try:
            image = read_image(sample.image)
        except InvalidInputError as exc:
            problems.append(str(exc))
            continue
        predictor.times.read += time.perf_counter() - t0
        det = predictor(image)
        stats.add(pred_boxes=det.boxes, pred_scores=det.scores, pred_classes=det.classes, pred_kpts=det.keypoints,
                  gt_boxes=sample.boxes, gt_classes=sample.classes, gt_kpts=sample.keypoints, key=sample.image_id)
        results += coco_results(sample.image_id, det, image.shape[:2])
        if on_image:
            on_image(n + 1, len(dataset.samples))
    scores = stats.compute()
    coco, per_image = None, None
    if dataset.kpt_shape[1] == 3:
        with tempfile.TemporaryDirectory() as tmp:
            gt = dataset.coco_json or dataset_ground_truth_json(dataset, Path(tmp) / "gt.json")
            coco_sigmas = None if dataset.kpt_shape[0] == 17 else sigmas
            coco = evaluate_keypoints(gt, results, sigmas=coco_sigmas)
            coco["ground_truth"] = "official COCO JSON" if dataset.coco_json else "built from labels (area = box x 0.53)"
            if uncertainty:
                per_image = coco_matches(gt, results, [int(k) for k in stats.keys], sigmas=coco_sigmas)
    matches = stats.matches(per_image)
    intervals = bootstrap_intervals(matches, **uncertainty) if uncertainty and stats.images else None
    if predictions_json:
        predictions_json.parent.mkdir(parents=True, exist_ok=True)
        predictions_json.write_text(json.dumps(results))
    return {
        "box": scores["box"].to_dict(), "pose": scores["pose"].to_dict(), "coco": coco,
        "intervals": intervals, "matches": matches.to_payload() if uncertainty else None,
        "images": stats.images, "instances": stats.instances, "inferences": predictor.inferences,
        "detections": len(results), "skipped": problems,
        "per_image_ms": predictor.times.per_image_ms(stats.images),
        "wall_seconds": time.perf_counter() - start,
        "settings": {"conf": predictor.nms.conf, "iou": predictor.nms.iou, "max_det": predictor.nms.max_det,
                     "imgsz": list(predictor.imgsz), "letterbox": "ultralytics rect=False",
                     "preprocess": predictor.preprocess},
    }


def iter_frames(source: Path, *, max_frames: int = 0, stride: int = 1,
                start: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """Images of a folder (sorted), or frames of a video, as (name, BGR image), from the `start`-th on."""
    if not source.exists():
        raise InvalidInputError(f"{source} does not exist")
    if start < 0:
        raise InvalidInputError(f"the first frame must be >= 0, got {start}")
    count = 0
    if source.is_dir() or source.suffix.lower() in IMAGE_SUFFIXES:
        paths = list_images(source) if source.is_dir() else [source]
        for path in paths[start::stride]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            yield path.name, image
            count += 1
            if max_frames and count >= max_frames:
                return
        return
    if source.suffix.lower() not in VIDEO_SUFFIXES:
        raise InvalidInputError(f"{source}: not a folder, an image or a video ({', '.join(sorted(VIDEO_SUFFIXES))})")
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise InvalidInputError(f"{source}: OpenCV cannot open this video")
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index >= start and (index - start) % stride == 0:
                yield f"{source.name}#{index}", frame
                count += 1
                if max_frames and count >= max_frames:
                    break
            index += 1
    finally:
        capture.release()
    if count == 0:
        raise InvalidInputError(f"{source}: no frame could be decoded" + (f" from frame {start} on" if start else ""))


@dataclass(frozen=True)
class PseudoTruth:
    """A reference model's confident detections on one image, used as its ground truth."""

    boxes: np.ndarray
    classes: np.ndarray
    keypoints: np.ndarray  # (n, K, 3), visibility 2 (confident) or 0 (unlabelled)


def pseudo_truth(reference: Predictor, image: np.ndarray, *, ref_conf: float = 0.5,
                 kpt_conf: float = 0.5) -> PseudoTruth:
    """Label one image with the reference model: detections scoring >= ref_conf become instances."""
    ref = reference(image)
    keep = ref.scores >= ref_conf
    kpts = ref.keypoints[keep].copy()
    if kpts.shape[-1] == 3:  # confident keypoints are 'labelled visible', the rest unlabelled
        kpts[..., 2] = np.where(kpts[..., 2] >= kpt_conf, 2.0, 0.0)
    else:
        kpts = np.concatenate([kpts, np.full((*kpts.shape[:2], 1), 2.0, np.float32)], -1)
    return PseudoTruth(ref.boxes[keep], ref.classes[keep], kpts)


def fidelity(candidate: Predictor, frames: list[np.ndarray], truths: list[PseudoTruth],
             on_image: Callable[[int, int], None] | None = None,
             uncertainty: dict[str, Any] | None = UNCERTAINTY) -> dict[str, Any]:
    """Label-free fidelity: score `candidate` against a reference's pseudo ground truth, frame by frame (with
    bootstrap intervals over frames and the per-frame matches, as `validate`)."""
    if not frames:
        raise InvalidInputError("no image or frame to compare on")
    k = candidate.kpt_shape[0]
    if truths and truths[0].keypoints.shape[1:] not in ((k, 3), (0, 3)) and truths[0].keypoints.size:
        raise InvalidInputError(f"the reference predicts {truths[0].keypoints.shape[1]} keypoints, the candidate "
                                f"{k}: fidelity needs the same keypoint layout")
    sigmas = keypoint_sigmas(k)
    stats = PoseStats(sigmas=sigmas)
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    for n, (image, truth) in enumerate(zip(frames, truths)):
        det = candidate(image)
        stats.add(pred_boxes=det.boxes, pred_scores=det.scores, pred_classes=det.classes, pred_kpts=det.keypoints,
                  gt_boxes=truth.boxes, gt_classes=truth.classes, gt_kpts=truth.keypoints, key=n + 1)
        results += coco_results(n + 1, det, image.shape[:2])
        if on_image:
            on_image(n + 1, len(frames))
    scores = stats.compute()
    # COCO's AP is 1.0 for identical predictions (Ultralytics' 101-point AP tops out at 0.995), so it is
    # the headline fidelity figure.
    with tempfile.TemporaryDirectory() as tmp:
        gt = ground_truth_json(((n + 1, image.shape[:2], t.boxes, t.keypoints) for n, (image, t)
                                in enumerate(zip(frames, truths))), kpt_count=k, path=Path(tmp) / "gt.json")
        coco = evaluate_keypoints(gt, results, sigmas=None if k == 17 else sigmas)
        per_image = coco_matches(gt, results, [n + 1 for n in range(len(frames))],
                                 sigmas=None if k == 17 else sigmas) if uncertainty else None
    coco["ground_truth"] = "reference predictions (area = box x 0.53)"
    matches = stats.matches(per_image)
    intervals = bootstrap_intervals(matches, **uncertainty) if uncertainty else None
    return {"fidelity": coco["AP"], "box": scores["box"].to_dict(), "pose": scores["pose"].to_dict(), "coco": coco,
            "intervals": intervals, "matches": matches.to_payload() if uncertainty else None,
            "images": stats.images, "instances": stats.instances, "inferences": candidate.inferences,
            "detections": len(results), "skipped": [],
            "per_image_ms": candidate.times.per_image_ms(stats.images), "wall_seconds": time.perf_counter() - start,
            "settings": {"conf": candidate.nms.conf, "iou": candidate.nms.iou, "max_det": candidate.nms.max_det,
                         "imgsz": list(candidate.imgsz)}}
