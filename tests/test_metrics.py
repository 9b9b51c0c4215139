"""Known answers for the metrics every accuracy number comes from, derived by hand, no model and no data: the AP
of one curve (Ultralytics' 101-point integral and COCOeval's envelope read), the IoU and OKS thresholds a match
passes, and greedy matching of duplicates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from posebench.evaluate.metrics import AREA_FACTOR, COCO_SIGMAS, IOU_THRESHOLDS, PoseStats, oks
from posebench.evaluate.uncertainty import average_precision_101, coco_average_precision

PERFECT = 0.995  # Ultralytics integrates precision over 101 recall points with a 0 sentinel after recall 1: the
#                  last of the 100 trapezoids is half lost, 1 - 0.5 / 100


def _person(x0: float, y0: float, x1: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    """A box and 17 visible keypoints spread inside it."""
    box = np.array([[x0, y0, x1, y1]], dtype=np.float64)
    k = np.linspace(0.1, 0.9, 17)
    kpts = np.stack([x0 + k * (x1 - x0), y0 + k[::-1] * (y1 - y0), np.full(17, 2.0)], -1)[None]
    return box, kpts


def _scores(pred_boxes, pred_kpts, gt_boxes, gt_kpts, scores=None):  # noqa: ANN001, ANN202
    stats = PoseStats()
    n = len(pred_boxes)
    stats.add(pred_boxes=pred_boxes, pred_scores=np.linspace(0.9, 0.5, n) if scores is None else scores,
              pred_classes=np.zeros(n), pred_kpts=pred_kpts, gt_boxes=gt_boxes, gt_classes=np.zeros(len(gt_boxes)),
              gt_kpts=gt_kpts)
    return stats.compute()


def test_the_ap_of_one_curve():
    assert average_precision_101(np.array([1.0]), np.array([1.0])) == pytest.approx(PERFECT)
    assert coco_average_precision(np.array([1.0]), np.array([1.0])) == pytest.approx(1.0)
    # half of the people found, no false positive: COCOeval reads precision 1 at the 51 recall points 0..0.5
    assert coco_average_precision(np.array([0.5]), np.array([1.0])) == pytest.approx(51 / 101)
    # one false positive ranked first, then every person: precision 1/2 all the way (COCO's envelope)
    assert coco_average_precision(np.array([0.0, 1.0]), np.array([0.0, 0.5])) == pytest.approx(0.5)


def test_a_perfect_prediction_scores_the_maximum_for_boxes_and_poses():
    box, kpts = _person(10, 20, 110, 220)
    s = _scores(box, kpts, box, kpts)
    for kind in ("box", "pose"):
        assert s[kind].map50 == pytest.approx(PERFECT) and s[kind].map50_95 == pytest.approx(PERFECT)
        assert s[kind].precision == pytest.approx(1.0, abs=1e-3) and s[kind].recall == pytest.approx(1.0, abs=1e-3)


def test_a_box_at_iou_0_62_passes_three_of_ten_thresholds():
    gt, kpts = _person(0, 0, 100, 100)
    pred = np.array([[0, 0, 100, 62]], dtype=np.float64)  # inside the truth: IoU = 6200 / 10000
    s = _scores(pred, kpts, gt, kpts)
    assert int((0.62 >= IOU_THRESHOLDS).sum()) == 3  # 0.50, 0.55, 0.60
    assert s["box"].map50 == pytest.approx(PERFECT)
    assert s["box"].map50_95 == pytest.approx(PERFECT * 3 / 10)
    assert s["pose"].map50_95 == pytest.approx(PERFECT)  # the keypoints are exact: pose is unaffected


def test_keypoints_off_by_a_known_oks_pass_the_thresholds_below_it():
    """Every keypoint moved by d_k, chosen so each one's similarity exp(-d^2 / (8 sigma^2 area)) is 0.72: OKS is
    0.72 and the pose matches at 0.50 ... 0.70, five of ten thresholds."""
    gt_box, gt = _person(0, 0, 200, 400)
    area = 200 * 400 * AREA_FACTOR
    d = np.sqrt(-math.log(0.72) * 8 * COCO_SIGMAS.astype(np.float64) ** 2 * area)
    pred = gt.copy()
    pred[0, :, 0] += d
    assert oks(gt, pred, np.array([area]), COCO_SIGMAS)[0, 0] == pytest.approx(0.72, abs=1e-5)
    s = _scores(gt_box, pred, gt_box, gt)
    assert s["pose"].map50 == pytest.approx(PERFECT)
    assert s["pose"].map50_95 == pytest.approx(PERFECT * 5 / 10)
    assert s["box"].map50_95 == pytest.approx(PERFECT)


def test_a_duplicate_is_a_false_positive_after_the_person_is_matched():
    """Two predictions on one person: the higher-scored one matches, the other is a false positive ranked after
    full recall, which costs nothing; a false positive ranked before the person halves the precision."""
    box, kpts = _person(0, 0, 100, 200)
    far_box, far_kpts = _person(300, 300, 400, 500)  # matches nothing
    both = np.concatenate([box, box]), np.concatenate([kpts, kpts])
    assert _scores(*both, box, kpts)["pose"].map50_95 == pytest.approx(PERFECT)
    # a false positive scored above the person: precision 1/2 when recall reaches 1; Ultralytics' integral of
    # the envelope (1/2 everywhere, the 0 sentinel after recall 1) is half the perfect score
    fp_first = _scores(np.concatenate([far_box, box]), np.concatenate([far_kpts, kpts]), box, kpts,
                       scores=np.array([0.9, 0.5]))
    assert fp_first["box"].map50 == pytest.approx(PERFECT / 2)
    assert fp_first["pose"].map50_95 == pytest.approx(PERFECT / 2)
