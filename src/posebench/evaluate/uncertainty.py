"""How sure an accuracy figure is: bootstrap intervals over images, and paired differences.

The validator keeps every prediction's match flags (box IoU and pose OKS at the ten thresholds, Ultralytics'
matching) with the image it came from, and for COCO's keypoint AP the per-image matches of COCOeval. A bootstrap
resample draws the images with replacement; an image drawn k times counts k times in the cumulative sums, so one
resample is one weighted pass over predictions sorted once, not a re-run of the model (1,000 resamples of 750
images: seconds). Intervals are the percentile kind.

Two deployments scored on the same images are compared on the same resamples (a paired bootstrap): both share
each image's difficulty, so the difference's interval is much narrower than either mAP's. A difference whose
interval spans zero is not resolved: the images cannot tell the two apart.
"""

from __future__ import annotations

import base64
import io
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from posebench.errors import InvalidInputError

FORMAT = "posebench-matches/1"
RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95
COCO_RECALLS = np.linspace(0.0, 1.0, 101)  # COCOeval's recThrs
MAP_METRICS = ("map50", "map50_95")
COCO_METRICS = ("AP", "AP50")


@dataclass(frozen=True)
class CocoMatches:
    """COCOeval's per-image keypoint matches (area range 'all', top maxDets), as its accumulate() reads them."""

    image: np.ndarray  # (M,) image index of each detection
    score: np.ndarray  # (M,)
    matched: np.ndarray  # (M, T) bool: matched to a ground truth at threshold t
    ignored: np.ndarray  # (M, T) bool: matched to an ignored ground truth (neither TP nor FP)
    positives: np.ndarray  # (I,) ground truths not ignored, per image


@dataclass(frozen=True)
class Matches:
    """Every prediction of one validation with its image and match flags: what a bootstrap needs."""

    image_keys: np.ndarray  # (I,) image ids, in validation order; paired comparisons align on them
    image: np.ndarray  # (N,) image index of each prediction
    conf: np.ndarray  # (N,)
    pred_cls: np.ndarray  # (N,)
    tp_box: np.ndarray  # (N, T) bool
    tp_pose: np.ndarray  # (N, T) bool
    gt_classes: np.ndarray  # (C,) classes with ground truth
    gt_counts: np.ndarray  # (I, C) ground truths per image and class
    coco: CocoMatches | None = None

    @property
    def images(self) -> int:
        return int(self.image_keys.shape[0])

    def to_payload(self) -> dict[str, str]:
        """A JSON-safe, compressed form for a result record."""
        arrays = {k: getattr(self, k) for k in ("image_keys", "image", "conf", "pred_cls", "gt_classes", "gt_counts")}
        arrays["tp_box"], arrays["tp_pose"] = np.packbits(self.tp_box, axis=1), np.packbits(self.tp_pose, axis=1)
        if self.coco is not None:
            arrays.update(coco_image=self.coco.image, coco_score=self.coco.score,
                          coco_matched=np.packbits(self.coco.matched, axis=1),
                          coco_ignored=np.packbits(self.coco.ignored, axis=1), coco_positives=self.coco.positives)
        buffer = io.BytesIO()
        np.savez(buffer, thresholds=np.array(self.tp_box.shape[1]), **arrays)
        return {"format": FORMAT, "data": base64.b64encode(zlib.compress(buffer.getvalue(), 6)).decode("ascii")}

    @classmethod
    def from_payload(cls, payload: dict[str, str]) -> Matches:
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise InvalidInputError(f"per-image matches in an unknown format ({str(payload)[:60]}); expected {FORMAT}")
        z = np.load(io.BytesIO(zlib.decompress(base64.b64decode(payload["data"]))))
        t = int(z["thresholds"])
        unpack = lambda a: np.unpackbits(a, axis=1, count=t).astype(bool)  # noqa: E731
        coco = None
        if "coco_image" in z:
            coco = CocoMatches(z["coco_image"], z["coco_score"], unpack(z["coco_matched"]), unpack(z["coco_ignored"]),
                               z["coco_positives"])
        return cls(z["image_keys"], z["image"], z["conf"], z["pred_cls"], unpack(z["tp_box"]), unpack(z["tp_pose"]),
                   z["gt_classes"], z["gt_counts"], coco)


RECALL_POINTS = np.linspace(0, 1, 101)


def average_precision_columns(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Ultralytics' AP of each column of (N, T) recall / precision curves: the precision envelope, linearly
    interpolated at 101 recall points, integrated."""
    t = recall.shape[1]
    last = recall[-1:] if recall.shape[0] else np.ones((1, t))
    mrec = np.concatenate((np.zeros((1, t)), recall, last, np.ones((1, t))))
    mpre = np.concatenate((np.ones((1, t)), precision, np.zeros((2, t))))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre, 0), 0), 0)
    return np.array([np.trapezoid(np.interp(RECALL_POINTS, mrec[:, j], mpre[:, j]), RECALL_POINTS)
                     for j in range(t)])


def average_precision_101(recall: np.ndarray, precision: np.ndarray) -> float:
    """Ultralytics' AP of one recall / precision curve (`average_precision_columns` of one column)."""
    return float(average_precision_columns(recall[:, None], precision[:, None])[0])


def coco_average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCOeval's AP of one threshold: the envelope read (not interpolated) at 101 recall points, averaged."""
    envelope = np.flip(np.maximum.accumulate(np.flip(precision))) if precision.size else precision
    at = np.searchsorted(recall, COCO_RECALLS, side="left")
    q = np.zeros(COCO_RECALLS.shape[0])
    valid = at < envelope.shape[0]
    q[valid] = envelope[at[valid]]
    return float(q.mean())


def _curve_ap(hits: list[np.ndarray], w: np.ndarray, n: float) -> np.ndarray:
    """Ultralytics' AP at each threshold of one class's confidence-sorted predictions, each counted `w` times.

    `hits[t]` are the rows that are true positives at threshold t. Only the points where the precision envelope
    and its interpolation can change are built: each true positive, the last row before it (the end of the run
    of false positives at the previous recall) and the last row; the interpolated envelope at the 101 recall
    points is then the same as over every row, in a fraction of the time (a test checks it against
    `average_precision_columns` over all rows)."""
    seen = np.cumsum(w)  # rows counted so far (true + false positives)
    total = seen[-1] if seen.size else 0.0
    out = np.zeros(len(hits))
    if total <= 0:
        return out
    for t, rows in enumerate(hits):
        rows = rows[w[rows] > 0]
        tpc = np.cumsum(w[rows])
        at = seen[rows]
        before = at - w[rows]
        prev = np.concatenate(([0.0], tpc))[:-1]
        rec = np.stack((prev, tpc), 1).ravel() / n
        with np.errstate(invalid="ignore", divide="ignore"):
            pre = np.stack((prev / before, tpc / at), 1).ravel()
        keep = np.stack((before > 0, np.ones_like(before, bool)), 1).ravel()
        last = tpc[-1] if tpc.size else 0.0
        mrec = np.concatenate(([0.0], rec[keep], [last / n, last / n, 1.0]))
        mpre = np.concatenate(([1.0], pre[keep], [last / total, 0.0, 0.0]))
        mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
        out[t] = np.trapezoid(np.interp(RECALL_POINTS, mrec, mpre), RECALL_POINTS)
    return out


def _map(hits: dict[object, list[np.ndarray]], rows: dict[object, np.ndarray], weight: np.ndarray,
         counts: dict[object, float], eps: float = 1e-16) -> tuple[float, float]:
    """(mAP50, mAP50-95) over classes; `counts` are the (weighted) ground truths per class. Classes without ground
    truth in this sample are left out, as Ultralytics does."""
    aps = [_curve_ap(hits[c], weight[rows[c]], n + eps) for c, n in counts.items() if n > 0]
    if not aps:
        return 0.0, 0.0
    ap = np.array(aps)
    return float(ap[:, 0].mean()), float(ap.mean())


def _coco_ap(coco: CocoMatches, order: np.ndarray, image_weight: np.ndarray) -> tuple[float, float]:
    """(AP, AP50) as COCOeval's accumulate() computes them, with each image counted `image_weight` times."""
    positives = float((coco.positives * image_weight).sum())
    if positives == 0:
        return -1.0, -1.0
    w = image_weight[coco.image[order]]
    keep = w > 0
    w, matched, ignored = w[keep, None], coco.matched[order][keep], coco.ignored[order][keep]
    tp = np.cumsum((matched & ~ignored) * w, 0)
    fp = np.cumsum((~matched & ~ignored) * w, 0)
    ap = [coco_average_precision(tp[:, t] / positives, tp[:, t] / (fp[:, t] + tp[:, t] + np.spacing(1)))
          for t in range(matched.shape[1])]
    return float(np.mean(ap)), float(ap[0])


class _Scorer:
    """Scores one Matches under any image weights; everything that does not depend on them is done once."""

    def __init__(self, matches: Matches, groups: tuple[str, ...] = ("box", "pose", "coco")):
        self.m = matches
        self.groups = groups
        order = np.argsort(-matches.conf, kind="stable")  # as Ultralytics sorts
        self.image = matches.image[order]
        cls = matches.pred_cls[order]
        self.rows = {c: np.flatnonzero(cls == c) for c in matches.gt_classes}  # each class's rows, sorted
        self.hits = {kind: {c: [np.flatnonzero(tp[order][r, t]) for t in range(tp.shape[1])]
                            for c, r in self.rows.items()}
                     for kind, tp in (("box", matches.tp_box), ("pose", matches.tp_pose))}
        self.coco_order = None if matches.coco is None else np.argsort(-matches.coco.score, kind="mergesort")

    def __call__(self, image_weight: np.ndarray) -> dict[str, float]:
        w = image_weight[self.image].astype(np.float64)
        counts = dict(zip(self.m.gt_classes, (self.m.gt_counts * image_weight[:, None]).sum(0)))
        out = {}
        for kind in ("box", "pose"):
            if kind in self.groups:
                out[f"{kind}.map50"], out[f"{kind}.map50_95"] = _map(self.hits[kind], self.rows, w, counts)
        if self.m.coco is not None and "coco" in self.groups:
            out["coco.AP"], out["coco.AP50"] = _coco_ap(self.m.coco, self.coco_order, image_weight)
        return out


def _draws(images: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, images) counts: how often each image is drawn in each resample."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, images, images), minlength=images) for _ in range(resamples)])


def _check(resamples: int, confidence: float) -> None:
    if resamples < 2:
        raise InvalidInputError(f"a bootstrap needs at least 2 resamples, got {resamples}")
    if not 0 < confidence < 1:
        raise InvalidInputError(f"the interval's confidence must be in (0, 1), got {confidence}")


def _interval(values: np.ndarray, confidence: float) -> list[float]:
    tail = (1 - confidence) / 2 * 100
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def bootstrap_intervals(matches: Matches, *, resamples: int = RESAMPLES, seed: int = SEED,
                        confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Percentile intervals of box and pose mAP50 / mAP50-95 (and COCO keypoint AP / AP50) over images."""
    _check(resamples, confidence)
    if matches.images == 0:
        raise InvalidInputError("no image to resample")
    score = _Scorer(matches)
    samples: dict[str, list[float]] = {}
    for counts in _draws(matches.images, resamples, seed):
        for name, value in score(counts.astype(np.float64)).items():
            samples.setdefault(name, []).append(value)
    out: dict[str, Any] = {"method": "bootstrap over images (percentile)", "resamples": resamples, "seed": seed,
                           "confidence": confidence, "images": matches.images}
    for name, values in samples.items():
        group, metric = name.split(".")
        out.setdefault(group, {})[metric] = _interval(np.array(values), confidence)
    return out


@dataclass(frozen=True)
class Difference:
    """candidate - baseline of one metric on the same images, with its paired bootstrap interval."""

    metric: str  # "pose.map50_95", "box.map50", "coco.AP"...
    estimate: float
    low: float
    high: float
    confidence: float
    images: int
    resamples: int

    @property
    def resolved(self) -> bool:
        """The interval excludes zero: the images tell the two apart."""
        return self.low > 0 or self.high < 0

    def within(self, tolerance: float) -> bool | None:
        """True: no more than `tolerance` worse (the interval says so); False: more than that worse; None: the
        interval straddles -tolerance, so the images cannot say."""
        if self.low >= -tolerance:
            return True
        if self.high < -tolerance:
            return False
        return None

    def describe(self, *, points: bool = True) -> str:
        """'-0.2 points [-0.5, +0.1], not resolved' (points: x100)."""
        k, unit = (100.0, " points") if points else (1.0, "")
        fmt = (lambda v: f"{v * k:+.1f}") if points else (lambda v: f"{v:+.4f}")  # noqa: E731
        state = "resolved" if self.resolved else "not resolved (the interval spans zero)"
        return f"{fmt(self.estimate)}{unit} [{fmt(self.low)}, {fmt(self.high)}], {state}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Difference:
        """The inverse of `to_dict` (a record's or a summary's stored difference)."""
        low, high = d["interval"]
        return cls(d.get("metric", ""), float(d["difference"]), float(low), float(high),
                   float(d.get("confidence", CONFIDENCE)), int(d.get("images", 0)), int(d.get("resamples", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "difference": self.estimate, "interval": [self.low, self.high],
                "confidence": self.confidence, "resolved": self.resolved, "images": self.images,
                "resamples": self.resamples, "method": "paired bootstrap over images (percentile)"}


def align(a: Matches, b: Matches) -> tuple[np.ndarray, np.ndarray]:
    """Index maps putting both validations' images in one order; refuses two different image sets."""
    ka, kb = [str(k) for k in a.image_keys], [str(k) for k in b.image_keys]
    if len(set(ka)) != len(ka) or len(set(kb)) != len(kb):
        raise InvalidInputError("a paired comparison needs unique image ids")
    if set(ka) != set(kb):
        only_a, only_b = len(set(ka) - set(kb)), len(set(kb) - set(ka))
        raise InvalidInputError(f"a paired comparison needs the same images: {only_a} image(s) only in the first "
                                f"validation, {only_b} only in the second (score both on the same data and split)")
    where = {k: i for i, k in enumerate(kb)}
    return np.arange(len(ka)), np.array([where[k] for k in ka])


def paired_differences(candidate: Matches, baseline: Matches, *, resamples: int = RESAMPLES, seed: int = SEED,
                       confidence: float = CONFIDENCE,
                       groups: tuple[str, ...] = ("box", "pose", "coco")) -> dict[str, Difference]:
    """candidate - baseline for every metric both have ("pose.map50_95", "coco.AP"... of the `groups` asked),
    each with a paired bootstrap interval."""
    _check(resamples, confidence)
    ia, ib = align(candidate, baseline)
    score_a, score_b = _Scorer(candidate, groups), _Scorer(baseline, groups)
    n = candidate.images
    point_a, point_b = score_a(np.ones(n)), score_b(np.ones(n))
    diffs: dict[str, list[float]] = {k: [] for k in point_a if k in point_b}
    for counts in _draws(n, resamples, seed):
        wa = np.zeros(n)
        wa[ia] = counts
        wb = np.zeros(n)
        wb[ib] = counts  # image ia[j] of the candidate is image ib[j] of the baseline: same draw
        sa, sb = score_a(wa), score_b(wb)
        for k in diffs:
            diffs[k].append(sa[k] - sb[k])
    out = {}
    for k, values in diffs.items():
        low, high = _interval(np.array(values), confidence)
        out[k] = Difference(k, point_a[k] - point_b[k], low, high, confidence, n, resamples)
    return out


def format_interval(value: float, interval: list[float] | None) -> str:
    """'0.504 [0.489, 0.520]', or the value alone when there is no interval."""
    if not interval:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"
