"""Known answers for the metric code (no data needed) and the bootstrap behind every accuracy interval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posebench.errors import InvalidInputError
from posebench.evaluate.metrics import PoseStats, match, oks, scores_from_stats
from posebench.evaluate.postprocess import decode, nms
from posebench.evaluate.preprocess import Letterbox
from posebench.evaluate.uncertainty import (Matches, average_precision_101, bootstrap_intervals,
                                            coco_average_precision, paired_differences)


# ---- known answers ------------------------------------------------------------------------------------------

def test_oks_of_a_hand_computed_case():
    gt = np.array([[[0, 0, 2], [10, 0, 2], [50, 50, 0]]], np.float32)  # the third keypoint is not labelled
    pred = np.array([[[3, 4], [10, 0], [0, 0]]], np.float32)
    sigmas = np.array([0.1, 0.1, 0.1], np.float32)
    # keypoint 1: d^2 = 25, e = 25 / ((2 x 0.1)^2 x 100 x 2) = 3.125; keypoint 2: d = 0; keypoint 3 is not counted
    expected = (np.exp(-3.125) + 1.0) / 2
    assert oks(gt, pred, np.array([100.0]), sigmas)[0, 0] == pytest.approx(expected, rel=1e-5)


def test_coco_101_point_ap_of_a_hand_made_curve():
    # precision 1.0 up to recall 0.5, then 0.5 up to recall 1.0: COCO reads the envelope at r = 0, 0.01, ..., 1
    # (the first point at or beyond r): 51 points at 1.0 (r <= 0.5) and 50 at 0.5
    assert coco_average_precision(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(76 / 101)
    # a later, higher precision lifts the envelope before it
    assert coco_average_precision(np.array([0.25, 0.5]), np.array([0.5, 1.0])) == pytest.approx(51 / 101)
    # recall never beyond 0.5: the points past it count as 0
    assert coco_average_precision(np.array([0.5]), np.array([1.0])) == pytest.approx(51 / 101)


def test_ultralytics_101_point_ap_of_a_hand_made_curve():
    # envelope 1.0 on [0, 0.5], then linear from (0.5, 1.0) to (1.0, 0.5); sampled at x = 0, 0.01, ..., 1 and
    # integrated with the trapezoid rule; the last sample (x = 1) reads the appended (1, 0) sentinel:
    # 0.5 (first half) + 0.49 x (1.0 + 0.51) / 2 + 0.01 x (0.51 + 0) / 2
    assert average_precision_101(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.8725, abs=1e-9)
    # a perfect detector: 1.0 everywhere except the sentinel's last 1 % (Ultralytics tops out at 0.995)
    assert average_precision_101(np.array([1.0]), np.array([1.0])) == pytest.approx(0.995)


def test_nms_of_boxes_with_known_overlaps():
    boxes = np.array([[0, 0, 10, 10],   # best
                      [1, 0, 11, 10],   # IoU with the best: 90 / 110 = 0.818 -> suppressed at 0.7
                      [5, 0, 15, 10],   # IoU 50 / 150 = 0.333 -> kept
                      [20, 20, 30, 30]], np.float32)  # disjoint -> kept
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert nms(boxes, scores, 0.7).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.85).tolist() == [0, 1, 2, 3]  # 0.818 < 0.85: both kept
    assert nms(boxes, scores, 0.3).tolist() == [0, 3]  # box 2 overlaps box 0 by 0.333 > 0.3


def test_pose_decode_of_a_hand_built_output():
    k = 2  # keypoints (x, y, score)
    out = np.zeros((1, 4 + 1 + 3 * k, 4), np.float32)  # (1, C, anchors)
    # anchor 0: a box centred at (50, 40), 20 x 10 in input pixels, score 0.9, keypoints (45, 38), (55, 42)
    out[0, :, 0] = [50, 40, 20, 10, 0.9, 45, 38, 0.8, 55, 42, 0.7]
    out[0, :, 1] = [51, 40, 20, 10, 0.5, 0, 0, 0, 0, 0, 0]  # overlaps anchor 0 (IoU 0.90): suppressed
    out[0, :, 2] = [10, 10, 4, 4, 0.0005, 0, 0, 0, 0, 0, 0]  # under conf 0.001: dropped
    out[0, :, 3] = [90, 90, 8, 8, 0.3, 88, 88, 0.5, 92, 92, 0.5]  # elsewhere: kept
    # the original image was 200 x 100 (h x w) letterboxed into 100 x 100: gain 0.5, padded 25 px left and right
    lb = Letterbox(orig_shape=(200, 100), gain=(0.5, 0.5), pad=(25, 0))
    det = decode(out, kpt_shape=(k, 3), letterbox=lb, end2end=False)  # the one-to-many head (YOLO11)
    assert det.scores.tolist() == pytest.approx([0.9, 0.3])
    # (50 +- 10 - 25) / 0.5, (40 +- 5) / 0.5
    assert det.boxes[0].tolist() == pytest.approx([30, 70, 70, 90])
    assert det.keypoints[0].ravel().tolist() == pytest.approx([40, 76, 0.8, 60, 84, 0.7])
    assert det.classes.tolist() == [0, 0]


def test_matching_gives_each_ground_truth_to_one_prediction():
    sim = np.array([[0.9, 0.8], [0.0, 0.6]])  # gt 0 overlaps both predictions, gt 1 only the second
    correct = match(np.zeros(2), np.zeros(2), sim, thresholds=np.array([0.5, 0.7, 0.85]))
    assert correct.tolist() == [[True, True, True], [True, False, False]]


# ---- the bootstrap ------------------------------------------------------------------------------------------

def _population(images: int, seed: int, *, skill: float = 0.75) -> list[tuple]:
    """Synthetic images: 1-3 people each; predictions whose chance to be right grows with their confidence."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(images):
        n_gt, n_pred = int(rng.integers(1, 4)), int(rng.integers(1, 5))
        conf = np.sort(rng.random(n_pred))[::-1].astype(np.float32)
        right = rng.random((n_pred, 1)) < skill * conf[:, None] + 0.15
        tp = np.zeros((n_pred, 10), bool)
        used = 0
        for j in range(n_pred):  # at most one right prediction per person; harder thresholds fail more often
            if right[j, 0] and used < n_gt:
                tp[j] = rng.random(10) < np.linspace(1.0, 0.3, 10)
                used += 1
        out.append((tp, conf, n_gt))
    return out


def _matches(images: list[tuple]) -> Matches:
    stats = PoseStats()
    for n, (tp, conf, n_gt) in enumerate(images):
        stats._tp_box.append(tp)
        stats._tp_pose.append(tp)
        stats._conf.append(conf)
        stats._pred_cls.append(np.zeros(len(conf)))
        stats._target_cls.append(np.zeros(n_gt))
        stats._keys.append(n)
        stats.images += 1
    return stats.matches()


def _map50_95(images: list[tuple]) -> float:
    tp = np.concatenate([i[0] for i in images])
    conf = np.concatenate([i[1] for i in images])
    target = np.zeros(sum(i[2] for i in images))
    return scores_from_stats(tp, conf, np.zeros(len(conf)), target).map50_95


def test_unit_weights_reproduce_the_point_estimate_and_a_resample_equals_its_concatenation():
    from posebench.evaluate.uncertainty import _Scorer

    images = _population(300, seed=1)
    m = _matches(images)
    score = _Scorer(m)
    assert score(np.ones(m.images))["pose.map50_95"] == pytest.approx(_map50_95(images), abs=1e-12)
    counts = np.bincount(np.random.default_rng(3).integers(0, 300, 300), minlength=300)
    drawn = [images[i] for i in np.repeat(np.arange(300), counts)]
    assert score(counts.astype(float))["pose.map50_95"] == pytest.approx(_map50_95(drawn), abs=1e-12)


def test_interval_shrinks_with_more_images():
    small = bootstrap_intervals(_matches(_population(60, seed=2)), resamples=300)
    large = bootstrap_intervals(_matches(_population(1500, seed=2)), resamples=300)
    width = lambda b: b["pose"]["map50_95"][1] - b["pose"]["map50_95"][0]  # noqa: E731
    assert width(large) < width(small) / 3  # ~ sqrt(1500 / 60) = 5 times narrower
    assert bootstrap_intervals(_matches(_population(60, seed=2)), resamples=300) == small  # seeded


@pytest.mark.slow
def test_interval_covers_the_population_value_about_95_percent_of_the_time():
    population = _population(20000, seed=7)
    truth = _map50_95(population)
    rng = np.random.default_rng(11)
    trials, covered = 60, 0
    for trial in range(trials):
        sample = [population[i] for i in rng.choice(len(population), 250, replace=False)]
        low, high = bootstrap_intervals(_matches(sample), resamples=200, seed=trial)["pose"]["map50_95"]
        covered += low <= truth <= high
    assert 0.85 <= covered / trials <= 1.0, covered  # 95 % nominal; binomial noise over 60 trials is ~ +-3 %


def test_paired_difference_resolves_a_real_loss_and_not_a_tie():
    images = _population(400, seed=5)
    base = _matches(images)
    worse = []
    for tp, conf, n in images:  # the candidate loses its strictest matches on every third image
        tp = tp.copy()
        tp[::3, 5:] = False
        worse.append((tp, conf, n))
    d = paired_differences(_matches(worse), base, resamples=300)["pose.map50_95"]
    assert d.estimate < 0 and d.resolved and d.high < 0
    same = paired_differences(base, base, resamples=50)["pose.map50_95"]
    assert same.estimate == 0 and not same.resolved and same.within(0.01) is True
    # paired is far narrower than the unpaired intervals of either side
    solo = bootstrap_intervals(base, resamples=300)["pose"]["map50_95"]
    assert (d.high - d.low) < (solo[1] - solo[0]) / 2


def test_paired_difference_needs_the_same_images():
    a, b = _matches(_population(20, seed=1)), _matches(_population(21, seed=1))
    with pytest.raises(InvalidInputError, match="same images"):
        paired_differences(a, b, resamples=10)


def test_matches_round_trip_through_a_record():
    m = _matches(_population(50, seed=4))
    again = Matches.from_payload(json.loads(json.dumps(m.to_payload())))
    assert np.array_equal(again.tp_pose, m.tp_pose) and np.array_equal(again.conf, m.conf)
    assert bootstrap_intervals(again, resamples=20) == bootstrap_intervals(m, resamples=20)
    with pytest.raises(InvalidInputError, match="unknown format"):
        Matches.from_payload({"format": "something-else", "data": ""})


# ---- the wording of a report and of tune ---------------------------------------------------------------------

def _records(tmp_path, variant_images: list[tuple], base_images: list[tuple]) -> list[dict]:
    from posebench.record import Identity, Record

    env = {"cpu_model": "Test CPU", "usable_cores": 2, "machine_id": "test00000000", "isa": ["avx2", "fma"]}
    records = []
    for variant, images, ms in (("base", base_images, 20.0), ("p50", variant_images, 10.0)):
        trial = Identity(model="m", source_id="s", variant=variant, runtime="onnxruntime", threads=2,
                         imgsz=(64, 64), format="onnx")
        m = _matches(images)
        tp = np.concatenate([i[0] for i in images])
        conf = np.concatenate([i[1] for i in images])
        target = np.zeros(sum(i[2] for i in images))
        s = scores_from_stats(tp, conf, np.zeros(len(conf)), target).to_dict()
        accuracy = {"box": s, "pose": s, "coco": None, "images": m.images, "instances": int(target.size),
                    "intervals": bootstrap_intervals(m, resamples=200), "matches": m.to_payload(),
                    "wall_seconds": 1.0}
        records.append(Record("accuracy", f"m|{variant}|accuracy", trial, accuracy=accuracy, environment=env,
                              evaluation={"mode": "labels", "dataset": "synthetic", "split": "val"},
                              extra={"synthetic": True}))
        records.append(Record("latency", f"m|{variant}|latency", trial, environment=env, extra={"synthetic": True},
                              latency={"mean_ms": ms, "p50_ms": ms, "p90_ms": ms, "p99_ms": ms, "std_ms": 0.1,
                                       "count": 10}))
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    return records


def test_report_calls_a_difference_inside_the_noise_not_resolved(tmp_path):
    from posebench.report.build import build_report

    base = _population(120, seed=9)
    variant = []
    for n, (tp, conf, g) in enumerate(base):  # a small change: inside the noise of 120 images
        tp = tp.copy()
        if n % 20 == 0:
            tp[:, 9] = ~tp[:, 9] & (tp[:, 0])
        variant.append((tp, conf, g))
    _records(tmp_path, variant, base)
    md_path, _ = build_report([tmp_path / "results.jsonl"], tmp_path / "rep", max_drop=0.001, metric="map50_95")
    md = md_path.read_text()
    verdict = md.split("## Verdict")[1].split("\n## ")[0]
    assert "Faster but not resolved: **p50" in verdict and "cannot say whether it is within 0.001" in verdict
    accuracy = md.split("## Accuracy: synthetic:val")[1].split("\n## ")[0]
    row = next(line for line in accuracy.splitlines() if line.startswith("| m | p50 |"))
    assert "not resolved (the interval spans zero)" in row
    assert "[" in row.split(" | ")[9]  # pose mAP50-95 with its interval
    # with a tolerance the interval clears, the faster variant is within it
    md_path, _ = build_report([tmp_path / "results.jsonl"], tmp_path / "rep2", max_drop=0.2, metric="map50_95")
    verdict = md_path.read_text().split("## Verdict")[1].split("\n## ")[0]
    assert "fastest configuration within 0.200" in verdict and "**p50 / onnxruntime" in verdict
    assert "within 20 point(s)" in verdict and "which is better is not resolved" in verdict


def test_tune_report_words_an_unresolved_difference():
    from posebench.report.tune import _gap

    assert _gap({"difference": -0.004, "interval": [-0.012, 0.003], "resolved": False}, 0.01).endswith(
        ": not resolved")
    assert _gap({"difference": -0.002, "interval": [-0.006, 0.001], "resolved": False}, 0.01).endswith(
        ": within (sign not resolved)")
    assert _gap({"difference": -0.03, "interval": [-0.04, -0.02], "resolved": True}, 0.01).endswith(
        ": below the floor")
