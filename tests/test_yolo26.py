"""YOLO26-pose end to end: the one-to-one (NMS-free) head exported, decoded and scored like Ultralytics does it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posebench.artifacts import ArtifactStore, read_metadata
from posebench.errors import InvalidInputError
from posebench.evaluate.postprocess import output_layout
from posebench.models import resolve_model
from posebench.runtimes import backend_class, create_backend

IMGSZ = (160, 224)
ANCHORS = (160 // 8) * (224 // 8) + (160 // 16) * (224 // 16) + (160 // 32) * (224 // 32)  # 735


@pytest.fixture(scope="module")
def yolo26(cache_dir):
    return ArtifactStore(resolve_model("yolo26n-pose.yaml"), cache_dir)


@pytest.fixture(scope="module")
def yolo26_varied(yolo26, tmp_path_factory, cache_dir):
    """yolo26n-pose with every parameter jittered (seed 0): a freshly initialised head scores all anchors of a
    level alike, and the top-k order of tied scores is arbitrary; jittered weights give distinct scores."""
    import torch

    from posebench.models import load_yolo

    model = load_yolo(yolo26.checkpoint())
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.model.parameters():
            spread = float(p.std()) if p.numel() > 1 else 0.0
            p.add_(torch.randn_like(p) * (0.2 * spread if spread > 1e-3 else 0.05))  # zero-initialised too
    path = tmp_path_factory.mktemp("yolo26") / "yolo26n-pose-varied.pt"
    model.save(str(path))
    return ArtifactStore(resolve_model(path), cache_dir)


def test_pose_model_built_from_yolo26_yaml_has_one_class(yolo26):
    """Ultralytics' yolo26-pose.yaml says nc: 80; a pose model built from it detects one class, person."""
    from posebench.models import load_yolo

    net = load_yolo(yolo26.checkpoint()).model
    assert net.model[-1].nc == 1 and net.names == {0: "person"}
    meta = read_metadata(yolo26.checkpoint())
    assert meta["nc"] == 1 and meta["end2end"] is True
    other = ArtifactStore(resolve_model("yolo26n-pose.yaml[nc=3]"), yolo26.root.parent)
    assert load_yolo(other.checkpoint()).model.model[-1].nc == 3  # the user can say otherwise


def test_yolo26_onnx_has_the_one_to_one_output_and_one2many_is_an_option(yolo26, cache_dir):
    meta = read_metadata(yolo26.get("onnx", IMGSZ))
    assert meta["end2end"] is True and meta["output_shapes"] == [[1, 300, 6 + 17 * 3]]
    many = ArtifactStore(resolve_model("yolo26n-pose.yaml[head=one2many]"), cache_dir)
    meta = read_metadata(many.get("onnx", IMGSZ))
    assert meta["end2end"] is False and meta["output_shapes"] == [[1, 4 + 1 + 17 * 3, ANCHORS]]


def test_a_head_the_model_lacks_and_a_layout_that_does_not_fit_are_refused(cache_dir):
    with pytest.raises(InvalidInputError, match="no one-to-one"):
        ArtifactStore(resolve_model("yolov8n-pose.yaml[head=end2end]"), cache_dir).checkpoint()
    with pytest.raises(InvalidInputError, match="does not fit the end-to-end layout"):
        output_layout((1, 56, ANCHORS), (17, 3), end2end=True)
    with pytest.raises(InvalidInputError, match="kpt_shape"):
        output_layout((1, 300, 57), (5, 3))
    with pytest.raises(InvalidInputError, match="not key=value with a known key"):
        resolve_model("yolo26n-pose.yaml[heads=one2many]")


def _ultralytics_predictions(checkpoint: Path, images: list[Path]) -> list[dict[str, np.ndarray]]:
    """Ultralytics' own NMS-free predict (nms=False) at a fixed letterbox (rect=False), on the same weights."""
    from ultralytics import YOLO

    model = YOLO(str(checkpoint))
    out = []
    for image in images:
        r = model.predict(str(image), imgsz=list(IMGSZ), nms=False, rect=False, conf=0.001, max_det=300,
                          verbose=False)[0]
        out.append({"boxes": r.boxes.xyxy.numpy(), "scores": r.boxes.conf.numpy(), "classes": r.boxes.cls.numpy(),
                    "keypoints": r.keypoints.data.numpy()})
    return out


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino", "deepsparse"])
def test_yolo26_decode_matches_ultralytics_predict(runtime, yolo26_varied):
    """Same random weights: posebench's end-to-end decode on every CPU runtime equals Ultralytics' predict
    (boxes and keypoints within 1e-3 of the image size, scores within 1e-3, same classes, same order)."""
    import cv2

    from posebench.errors import RuntimeNotInstalledError
    from posebench.evaluate.validate import Predictor

    images = sorted((Path(__import__("ultralytics").__file__).parent / "assets").glob("*.jpg"))
    theirs = _ultralytics_predictions(yolo26_varied.checkpoint(), images)
    artifact = yolo26_varied.get(backend_class(runtime).artifact_format, IMGSZ)
    try:
        backend = create_backend(runtime, artifact, threads=2)
    except RuntimeNotInstalledError as exc:
        pytest.skip(str(exc))
    with backend:
        predictor = Predictor(backend, IMGSZ, (17, 3), end2end=read_metadata(artifact)["end2end"])
        for image, ref in zip(images, theirs):
            frame = cv2.imread(str(image))
            det = predictor(frame)
            h, w = frame.shape[:2]
            assert len(det) == len(ref["scores"]) > 10, (runtime, len(det), len(ref["scores"]))
            kpts = det.keypoints.copy()
            kpts[..., 0] = kpts[..., 0].clip(0, w)
            kpts[..., 1] = kpts[..., 1].clip(0, h)
            ours = _rows(det.clipped_boxes((h, w)), det.scores, det.classes, kpts, max(h, w))
            _assert_same_detections(ours, _rows(ref["boxes"], ref["scores"], ref["classes"], ref["keypoints"],
                                                max(h, w)), runtime)


def _rows(boxes, scores, classes, kpts, size) -> np.ndarray:
    """One row per detection: boxes and keypoint x, y as fractions of the image size, then score, visibility
    scores and class: every value 1e-3 apart means 1e-3 of the image or of a score."""
    n = len(scores)
    return np.concatenate([boxes / size, kpts[..., :2].reshape(n, -1) / size, scores[:, None], kpts[..., 2],
                           classes[:, None] * 10.0], 1)


def _assert_same_detections(ours: np.ndarray, theirs: np.ndarray, runtime: str) -> None:
    """Each detection has a counterpart within 1e-3 in every value, one to one (near-tied scores may swap
    places in the top-k order: the two pipelines' letterboxed inputs differ by float rounding)."""
    distance = np.abs(ours[:, None, :] - theirs[None, :, :]).max(2)
    nearest = distance.argmin(1)
    assert distance.min(1).max() <= 1e-3, (runtime, float(distance.min(1).max()))
    assert len(set(nearest.tolist())) == len(ours), f"{runtime}: detections matched twice"


def test_study_runs_yolo26_end_to_end_beside_the_peer_export(tmp_path, cache_dir):
    """A study with yolo26n-pose (random weights): base, int8 PTQ, one-shot p50 and Ultralytics' own OpenVINO
    int8 export, on torch, onnxruntime and openvino; YOLO26 runs its NMS-free head throughout."""
    import json

    from conftest import REPO, run_cli

    assets = Path(__import__("ultralytics").__file__).parent / "assets"
    recipes = REPO / "recipes"
    study = tmp_path / "study.yaml"
    study.write_text(f"""name: yolo26-tiny
models: [yolo26n-pose.yaml]
variants:
  base: null
  int8: {recipes / 'int8-ptq.yaml'}
  p50: {recipes / 'yolo-pose-oneshot-p50.yaml'}
  ultralytics-int8: {recipes / 'ultralytics-openvino-int8.yaml'}
runtimes: [torch, onnxruntime, openvino]
threads: [2]
imgsz: 128
calibration: {assets}
bn_calibration: {assets}
latency: {{iters: 5, min_seconds: 0, warmup: 1, warmup_seconds: 0, rounds: 2, probe: false}}
evaluation:
  - name: fidelity
    reference: base
    source: {assets}
""")
    out = tmp_path / "out"
    result = run_cli("study", str(study), "--out", str(out), timeout=1200)
    assert result.returncode == 3, result.stderr[-2000:]  # torch cannot run int8 or an exported artifact
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    status = {(r["trial"]["variant"], r["trial"]["runtime"]): r["status"] for r in records
              if r.get("kind") == "latency"}
    for variant in ("base", "int8", "p50", "ultralytics-int8"):
        for runtime in ("onnxruntime", "openvino"):
            if (variant, runtime) == ("ultralytics-int8", "onnxruntime"):
                continue  # an OpenVINO IR: onnxruntime cannot run it
            assert status[(variant, runtime)] == "ok", (variant, runtime, status)
    assert status[("base", "torch")] == status[("p50", "torch")] == "ok"
    assert status[("ultralytics-int8", "onnxruntime")] == "skipped"
    scored = {(r["trial"]["variant"], r["trial"]["runtime"]) for r in records
              if r.get("kind") == "accuracy" and r["status"] == "ok"}  # random weights: nothing to agree on
    assert {(v, rt) for v in ("base", "int8", "p50") for rt in ("onnxruntime", "openvino")} <= scored
    bundle = json.loads((out / "variants" / "yolo26n-pose" / "int8" / "0-int8-ptq" / "bundle.json").read_text())
    onnx_meta = read_metadata(out / "variants" / "yolo26n-pose" / "int8" / "0-int8-ptq" / bundle["artifacts"]["onnx"])
    assert onnx_meta["end2end"] is True and onnx_meta["output_shapes"][0][2] == 6 + 17 * 3
    assert "yolo26n-pose" in (out / "report" / "report.md").read_text()


def test_peer_export_recipes_are_checked():
    from posebench.compress.recipe import Recipe, RecipeError

    with pytest.raises(RecipeError, match="int8"):
        Recipe.from_yaml("modifiers:\n  - type: ultralytics_export\n    format: onnx\n    int8: true\n")
    with pytest.raises(RecipeError, match="one artifact"):
        Recipe.from_yaml("modifiers:\n  - type: ultralytics_export\n  - type: quantization\n")
    assert Recipe.from_yaml("modifiers:\n  - type: ultralytics_export\n").ultralytics_export().format == "openvino"
