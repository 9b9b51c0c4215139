"""Box and pose P, R, mAP50, mAP50-95 computed as Ultralytics 8.4 does, in numpy.

Matching: predictions in descending confidence claim the best still-unclaimed ground truth at each
of the 10 IoU/OKS thresholds 0.50:0.05:0.95. AP: COCO 101-point interpolation of the precision
envelope. P and R: at the confidence that maximises the (smoothed) mean F1. OKS uses the COCO
sigmas and the ground-truth box area x 0.53 as the object scale, like Ultralytics' validator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from posebench.evaluate.postprocess import box_iou
from posebench.evaluate.uncertainty import CocoMatches, Matches, average_precision_101

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87,
                        0.87, 0.89, 0.89], dtype=np.float32) / 10.0
AREA_FACTOR = 0.53  # box area -> segment area, as xtcocotools / Ultralytics


def keypoint_sigmas(keypoints: int) -> np.ndarray:
    """OKS sigmas: COCO's for its 17 keypoints, else uniform (1 / K each), as Ultralytics does."""
    return COCO_SIGMAS if keypoints == 17 else np.full(keypoints, 1 / keypoints)


def oks(gt_kpts: np.ndarray, pred_kpts: np.ndarray, area: np.ndarray, sigmas: np.ndarray,
        eps: float = 1e-7) -> np.ndarray:
    """Object keypoint similarity: gt (n, K, 3) x pred (m, K, >=2), gt areas (n,) -> (n, m)."""
    d = ((gt_kpts[:, None, :, 0] - pred_kpts[None, :, :, 0]) ** 2
         + (gt_kpts[:, None, :, 1] - pred_kpts[None, :, :, 1]) ** 2)
    e = d / ((2 * sigmas) ** 2 * (area[:, None, None] + eps) * 2)
    visible = gt_kpts[..., 2] != 0
    return (np.exp(-e) * visible[:, None]).sum(-1) / (visible.sum(-1)[:, None] + eps)


def match(pred_classes: np.ndarray, gt_classes: np.ndarray, similarity: np.ndarray,
          thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """Greedy matching of confidence-ordered predictions; similarity is (n_gt, n_pred) -> correct (n_pred, T)."""
    correct = np.zeros((pred_classes.shape[0], thresholds.shape[0]), dtype=bool)
    if not gt_classes.size or not pred_classes.size:
        return correct
    sim = similarity * (gt_classes[:, None] == pred_classes[None, :])
    claimed = np.zeros((sim.shape[0], thresholds.shape[0]), dtype=bool)
    cols = np.arange(thresholds.shape[0])
    for j in np.flatnonzero((sim >= thresholds.min()).any(0)):
        available = np.where(claimed, 0, sim[:, j, None])
        k = available.argmax(0)
        correct[j] = available[k, cols] >= thresholds
        claimed[k, cols] |= correct[j]
    return correct


def _smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    nf = round(len(y) * f * 2) // 2 + 1
    pad = np.ones(nf // 2)
    return np.convolve(np.concatenate((pad * y[0], y, pad * y[-1])), np.ones(nf) / nf, mode="valid")


@dataclass(frozen=True)
class Scores:
    """P, R, mAP50, mAP50-95 of one kind of prediction (boxes or poses), averaged over classes."""

    precision: float
    recall: float
    map50: float
    map50_95: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def scores_from_stats(tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray,
                      eps: float = 1e-16) -> Scores:
    """Ultralytics' `ap_per_class` reduced to its mean results."""
    order = np.argsort(-conf, kind="stable")
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, counts = np.unique(target_cls, return_counts=True)
    x = np.linspace(0, 1, 1000)
    ap = np.zeros((classes.shape[0], tp.shape[1]))
    p_curve, r_curve = np.zeros((classes.shape[0], 1000)), np.zeros((classes.shape[0], 1000))
    for ci, c in enumerate(classes):
        sel = pred_cls == c
        if not sel.any():
            continue
        tpc, fpc = tp[sel].cumsum(0), (1 - tp[sel]).cumsum(0)
        recall = tpc / (counts[ci] + eps)
        precision = tpc / (tpc + fpc)
        r_curve[ci] = np.interp(-x, -conf[sel], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-x, -conf[sel], precision[:, 0], left=1)
        for j in range(tp.shape[1]):
            ap[ci, j] = average_precision_101(recall[:, j], precision[:, j])
    if not classes.size:
        return Scores(0.0, 0.0, 0.0, 0.0)
    f1 = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    best = _smooth(f1.mean(0), 0.1).argmax()
    return Scores(precision=float(p_curve[:, best].mean()), recall=float(r_curve[:, best].mean()),
                  map50=float(ap[:, 0].mean()), map50_95=float(ap.mean()))


@dataclass
class PoseStats:
    """Accumulates per-image matches; `compute()` gives box and pose scores over everything added."""

    sigmas: np.ndarray = field(default_factory=lambda: COCO_SIGMAS)
    _tp_box: list[np.ndarray] = field(default_factory=list)
    _tp_pose: list[np.ndarray] = field(default_factory=list)
    _conf: list[np.ndarray] = field(default_factory=list)
    _pred_cls: list[np.ndarray] = field(default_factory=list)
    _target_cls: list[np.ndarray] = field(default_factory=list)
    _keys: list[object] = field(default_factory=list)
    images: int = 0
    instances: int = 0

    def add(self, *, pred_boxes: np.ndarray, pred_scores: np.ndarray, pred_classes: np.ndarray,
            pred_kpts: np.ndarray, gt_boxes: np.ndarray, gt_classes: np.ndarray, gt_kpts: np.ndarray,
            key: object = None) -> None:
        """Add one image: predictions sorted by descending score; boxes xyxy in one pixel space. `key` names the
        image (its id) for paired comparisons; default: its position."""
        self._keys.append(self.images if key is None else key)
        self.images += 1
        self.instances += int(gt_classes.shape[0])
        if gt_classes.size and pred_classes.size:
            tp_box = match(pred_classes, gt_classes, box_iou(gt_boxes, pred_boxes))
            area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]) * AREA_FACTOR
            tp_pose = match(pred_classes, gt_classes, oks(gt_kpts, pred_kpts, area, self.sigmas))
        else:
            tp_box = tp_pose = np.zeros((pred_classes.shape[0], IOU_THRESHOLDS.shape[0]), dtype=bool)
        self._tp_box.append(tp_box)
        self._tp_pose.append(tp_pose)
        self._conf.append(pred_scores)
        self._pred_cls.append(pred_classes)
        self._target_cls.append(gt_classes)

    def compute(self) -> dict[str, Scores]:
        """{"box": Scores, "pose": Scores} over every image added so far."""
        cat = lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape)  # noqa: E731
        conf, pred_cls = cat(self._conf, (0,)), cat(self._pred_cls, (0,))
        target_cls = cat(self._target_cls, (0,))
        return {"box": scores_from_stats(cat(self._tp_box, (0, 10)), conf, pred_cls, target_cls),
                "pose": scores_from_stats(cat(self._tp_pose, (0, 10)), conf, pred_cls, target_cls)}

    @property
    def keys(self) -> list[object]:
        """The images added so far, by key, in order."""
        return list(self._keys)

    def matches(self, coco: CocoMatches | None = None) -> Matches:
        """Every prediction with its image and match flags, for bootstrap intervals and paired comparisons."""
        target_cls = np.concatenate(self._target_cls) if self._target_cls else np.zeros(0)
        classes = np.unique(target_cls)
        counts = np.array([[int((t == c).sum()) for c in classes] for t in self._target_cls],
                          dtype=np.int32).reshape(len(self._target_cls), classes.shape[0])
        sizes = [len(c) for c in self._conf]
        cat = lambda parts, shape, dtype: (np.concatenate(parts) if parts else np.zeros(shape)).astype(dtype)  # noqa: E731
        return Matches(image_keys=np.array([str(k) for k in self._keys]),
                       image=np.repeat(np.arange(len(sizes), dtype=np.int32), sizes),
                       conf=cat(self._conf, (0,), np.float32), pred_cls=cat(self._pred_cls, (0,), np.int16),
                       tp_box=cat(self._tp_box, (0, 10), bool), tp_pose=cat(self._tp_pose, (0, 10), bool),
                       gt_classes=classes.astype(np.int16), gt_counts=counts, coco=coco)
