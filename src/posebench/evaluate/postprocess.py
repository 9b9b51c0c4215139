"""Decode the raw pose output and run NMS in numpy, as Ultralytics' validator does.

Two output layouts exist:
- one-to-many (YOLOv8, YOLO11, and YOLO26 with head=one2many): (1, 4 + nc + K*D, anchors): box centre/size in
  input pixels, class scores in [0, 1], then K keypoints of D values (x, y[, visibility score]). Defaults match
  `yolo val`: confidence > 0.001, IoU 0.7, at most 300 detections; NMS runs in input-pixel space and the
  survivors are then mapped back to the original image.
- end-to-end (YOLO26's one-to-one head, exported as Ultralytics does with `nms=False`): (1, max_det, 6 + K*D):
  x1, y1, x2, y2, score, class, keypoints, already the top-k by score. No NMS: rows scoring above `conf` are
  kept, at most `max_det` of them, as Ultralytics' `non_max_suppression(end2end=True)` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posebench.errors import InvalidInputError
from posebench.evaluate.preprocess import Letterbox
from posebench.export.layout import output_layout


@dataclass(frozen=True)
class NMSConfig:
    """Thresholds of the decode + NMS step (defaults: Ultralytics' validator)."""

    conf: float = 0.001  # keep candidates scoring above this
    iou: float = 0.7  # suppress boxes overlapping a better one by more than this
    max_det: int = 300  # detections kept per image
    max_nms: int = 30000  # candidates entering NMS (highest scores first)

    def __post_init__(self) -> None:
        if not (0 <= self.conf < 1 and 0 < self.iou <= 1 and self.max_det >= 1):
            raise InvalidInputError(f"bad NMS settings {self}: need 0 <= conf < 1, 0 < iou <= 1, max_det >= 1")


@dataclass(frozen=True)
class Detections:
    """Detections of one image, in original-image pixels."""

    boxes: np.ndarray  # (n, 4) x1, y1, x2, y2 (not clipped: metrics use them as predicted)
    scores: np.ndarray  # (n,)
    classes: np.ndarray  # (n,) int
    keypoints: np.ndarray  # (n, K, D): x, y[, score]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def clipped_boxes(self, shape: tuple[int, int]) -> np.ndarray:
        """Boxes clipped to an image of (height, width), as written to prediction files."""
        out = self.boxes.copy()
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, shape[1])
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, shape[0])
        return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (n, 4) x (m, 4) -> (n, m)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-7)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS (as torchvision.ops.nms): indices kept, best score first."""
    order = np.argsort(-scores, kind="stable")
    boxes = boxes.astype(np.float32)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.clip(rb - lt, 0, None).prod(1)
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def decode(output: np.ndarray, *, kpt_shape: tuple[int, int], letterbox: Letterbox,
           config: NMSConfig = NMSConfig(), end2end: bool | None = None) -> Detections:
    """Turn one image's raw output into detections in original-image pixels (layout: see the module doc;
    `end2end` is the artifact's declared head, None to infer it from the shape)."""
    k, d = kpt_shape
    if output_layout(output.shape, kpt_shape, end2end) == "end2end":
        return decode_end2end(output, kpt_shape=kpt_shape, letterbox=letterbox, config=config)
    nc = output.shape[1] - 4 - k * d
    if nc < 1:
        raise InvalidInputError(f"the model output has {output.shape[1]} channels, too few for 4 box values, "
                                f"1+ class scores and {k}x{d} keypoint values: does kpt_shape {list(kpt_shape)} "
                                "match the model?")
    out = output[0]  # (C, anchors): scores are read row-wise (contiguous), only the candidates are gathered
    cls_scores = out[4:4 + nc]
    scores = cls_scores[0] if nc == 1 else cls_scores.max(0)
    keep = np.flatnonzero(scores > config.conf)
    x = out[:, keep].T  # (candidates, C)
    scores = scores[keep]
    classes = np.zeros(keep.size, np.int64) if nc == 1 else cls_scores[:, keep].argmax(0)
    if scores.size > config.max_nms:
        top = np.argsort(-scores, kind="stable")[:config.max_nms]
        x, scores, classes = x[top], scores[top], classes[top]
    xy, wh = x[:, :2], x[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    # class-aware NMS: offset each class far apart (Ultralytics' max_wh trick)
    kept = nms(boxes + classes[:, None].astype(np.float32) * 7680, scores, config.iou)[:config.max_det]
    kpts = x[kept, 4 + nc:].reshape(-1, k, d).copy()
    kpts[..., :2] = letterbox.to_original(kpts[..., :2].reshape(-1, k * 2)).reshape(-1, k, 2)
    return Detections(boxes=letterbox.to_original(boxes[kept]), scores=scores[kept].astype(np.float32),
                      classes=classes[kept].astype(np.int64), keypoints=kpts.astype(np.float32))


def decode_end2end(output: np.ndarray, *, kpt_shape: tuple[int, int], letterbox: Letterbox,
                   config: NMSConfig = NMSConfig()) -> Detections:
    """The NMS-free (1, max_det, 6 + K*D) output: keep rows scoring above `conf`, at most `max_det`, in order."""
    k, d = kpt_shape
    x = output[0]
    x = x[x[:, 4] > config.conf][:config.max_det]
    kpts = x[:, 6:].reshape(-1, k, d).copy()
    kpts[..., :2] = letterbox.to_original(kpts[..., :2].reshape(-1, k * 2)).reshape(-1, k, 2)
    return Detections(boxes=letterbox.to_original(x[:, :4]), scores=x[:, 4].astype(np.float32),
                      classes=x[:, 5].round().astype(np.int64), keypoints=kpts.astype(np.float32))
