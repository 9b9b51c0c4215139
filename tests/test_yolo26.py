"""YOLO26-pose end to end: the one-to-one (NMS-free) head exported, decoded and scored like Ultralytics does it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posebench.errors import InvalidInputError
from posebench.export import ArtifactStore, read_metadata
from posebench.export.layout import output_layout
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

    from posebench.ultralytics_adapter import load_yolo

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
    from posebench.ultralytics_adapter import load_yolo

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


@pytest.mark.slow
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
bn_recalibration: {assets}
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


def test_an_end_to_end_onnx_made_elsewhere_runs_on_openvino_too(yolo26_varied, tmp_path, cache_dir):
    """OpenVINO's CPU plugin folds the column slices of YOLO26's top-k into its gathers and then rejects them; the
    ONNX -> IR conversion guards those slices, so an imported end-to-end ONNX also runs on OpenVINO, same output."""
    import shutil

    import onnxruntime as ort
    import openvino as ov

    path = tmp_path / "yolo26-e2e.onnx"  # no sidecar: the layout comes from the file's own metadata props
    shutil.copyfile(yolo26_varied.get("onnx", IMGSZ), path)
    store = ArtifactStore(resolve_model(path), cache_dir)
    ir = store.artifact("openvino", IMGSZ)
    assert ir.format == "openvino" and ir.meta["end2end"] is True and ir.meta["converted_from"] == str(path.resolve())
    x = np.random.default_rng(0).random((1, 3, *IMGSZ), dtype=np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    got = ov.Core().compile_model(str(ir.path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0]  # not bf16
    assert got.shape == expected.shape == (1, 300, 6 + 17 * 3)
    # the same detections; near-tied scores may come in another order (each runtime's own top-k), and which of
    # the tied last ones make the cut differs: OpenVINO's best 100 are all among ONNX Runtime's 300
    nearest = np.abs(got[0][:100, None, :] - expected[0][None, :, :]).max(-1).min(1)
    assert nearest.max() < 0.05


@pytest.mark.slow
@pytest.mark.train
def test_qat_on_yolo26_trains_both_heads_and_exports_the_one_to_one_head(mini, tmp_path):
    """QAT keeps both branches of the end-to-end head while training (its loss needs both) and exports the
    NMS-free one: a QDQ ONNX and an OpenVINO IR with the (1, max_det, 6 + K*D) output, on every CPU runtime."""
    import json

    from posebench.compress.recipe import Recipe
    from posebench.compress.run import CompressOptions, compress

    recipe = Recipe.from_yaml("modifiers:\n  - type: quantization\n    method: qat\n    epochs: 1\n    imgsz: 96\n"
                              "    calibration_images: 4\n")
    out = tmp_path / "qat26"
    compress(resolve_model("yolo26n-pose.yaml"), recipe, out,
             options=CompressOptions(data=mini / "coco-pose-mini.yaml", imgsz=96, batch=4, cache_dir=out / "cache"))
    bundle = json.loads((out / "bundle.json").read_text())
    assert bundle["method"] == "qat" and bundle["imgsz"] == [96, 96]
    onnx_meta = read_metadata(out / bundle["artifacts"]["onnx"])
    max_det = min(300, 12 * 12 + 6 * 6 + 3 * 3)
    assert onnx_meta["end2end"] is True and onnx_meta["output_shapes"] == [[1, max_det, 6 + 17 * 3]]
    quantized = onnx_meta["quantization"]["quantized_nodes"]
    assert any("one2one_cv2" in n for n in quantized) and not any("/cv2." in n or "/cv3." in n for n in quantized)
    check = onnx_meta["quantization"]["export_check"]
    assert check["qdq_pairs"] > 100 and "top_k" in check
    store = ArtifactStore(resolve_model(out), out / "cache")
    x = np.random.default_rng(0).random((1, 3, 96, 96), dtype=np.float32)
    for runtime in ("onnxruntime", "openvino", "deepsparse"):
        with create_backend(runtime, store.get(backend_class(runtime).artifact_format, (96, 96)), threads=2) as b:
            result = b.infer(x)[0]
        assert result.shape == (1, max_det, 6 + 17 * 3) and np.isfinite(result).all(), runtime
