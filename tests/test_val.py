"""The validator: parity with `yolo val`, agreement across runtimes, COCOeval, fidelity, bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from posebench.evaluate.data import DataError, load_dataset
from posebench.evaluate.postprocess import NMSConfig
from posebench.evaluate.validate import Predictor, fidelity, iter_frames, pseudo_truth, validate
from posebench.runtimes import backend_class, create_backend

VAL_IMGSZ = (640, 640)


def _validate(artifacts, runtime: str, data: Path, **kwargs) -> dict:
    artifact = artifacts.get(backend_class(runtime).artifact_format, VAL_IMGSZ)
    with create_backend(runtime, artifact, threads=2) as backend:
        return validate(Predictor(backend, VAL_IMGSZ, (17, 3)), load_dataset(data), **kwargs)


@pytest.fixture(scope="module")
def torch_scores(artifacts, mini) -> dict[str, dict]:
    return {name: _validate(artifacts, "torch", mini / f"{name}.yaml") for name in ("coco-pose-mini", "both")}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["coco-pose-mini", "both"])
def test_torch_runtime_matches_yolo_val(name, mini, torch_scores, default_source):
    from ultralytics import YOLO

    theirs = YOLO(str(default_source.path)).val(data=str(mini / f"{name}.yaml"), imgsz=VAL_IMGSZ[0], rect=False,
                                                batch=1, conf=0.001, iou=0.7, device="cpu", plots=False,
                                                verbose=False)
    ours = torch_scores[name]
    for kind, metric in (("box", theirs.box), ("pose", theirs.pose)):
        expected = {"precision": metric.mp, "recall": metric.mr, "map50": metric.map50, "map50_95": metric.map}
        for key, value in expected.items():
            assert ours[kind][key] == pytest.approx(value, abs=0.002), f"{name} {kind} {key}"
    assert ours["images"] == (12 if name == "coco-pose-mini" else 42)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "deepsparse"])
def test_every_runtime_scores_like_torch(runtime, artifacts, mini, torch_scores):
    ours = _validate(artifacts, runtime, mini / "both.yaml")
    for kind in ("box", "pose"):
        for key, value in torch_scores["both"][kind].items():
            assert ours[kind][key] == pytest.approx(value, abs=0.005), f"{runtime} {kind} {key}"


def test_coco_ap_agrees_with_pycocotools(artifacts, mini, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_path = mini / "annotations" / "person_keypoints_val.json"
    preds = tmp_path / "predictions.json"
    artifact = artifacts.get("onnx", VAL_IMGSZ)
    with create_backend("onnxruntime", artifact, threads=2) as backend:
        ours = validate(Predictor(backend, VAL_IMGSZ, (17, 3)), load_dataset(gt_path), predictions_json=preds)
    gt = COCO(str(gt_path))
    ev = COCOeval(gt, gt.loadRes(str(preds)), iouType="keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ours["coco"]["ground_truth"] == "official COCO JSON"
    for n, name in enumerate(("AP", "AP50", "AP75", "APm", "APl", "AR")):
        assert ours["coco"][name] == pytest.approx(ev.stats[n], abs=1e-6), name
    assert 0.3 < ours["coco"]["AP"] < 1.0


# --- label-free fidelity: runs anywhere, on images shipped with Ultralytics and frames we make ------------

@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    return [image for _, image in iter_frames(assets)]


def _predictor(artifacts, runtime="torch", imgsz=(320, 320)) -> Predictor:
    artifact = artifacts.get(backend_class(runtime).artifact_format, imgsz)
    return Predictor(create_backend(runtime, artifact, threads=2), imgsz, (17, 3), NMSConfig())


def test_fidelity_of_a_model_against_itself_is_one(artifacts, frames):
    reference, candidate = _predictor(artifacts), _predictor(artifacts)
    truths = [pseudo_truth(reference, f) for f in frames]
    assert sum(len(t.boxes) for t in truths) >= 4  # people in bus.jpg and zidane.jpg
    result = fidelity(candidate, frames, truths)
    assert result["fidelity"] == pytest.approx(1.0)
    assert result["pose"]["map50_95"] == pytest.approx(0.995)  # Ultralytics' AP tops out at 0.995


def test_fidelity_drops_for_a_perturbed_model(artifacts, frames, tmp_path):
    import torch

    from posebench.export import ArtifactStore
    from posebench.models import resolve_model
    from posebench.ultralytics_adapter import load_yolo

    model = load_yolo(artifacts.checkpoint())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.model.modules():
            if isinstance(module, torch.nn.Conv2d):
                w = module.weight
                w += 0.3 * w.std() * torch.randn(w.shape, generator=generator)
    model.save(str(tmp_path / "perturbed.pt"))
    perturbed = ArtifactStore(resolve_model(tmp_path / "perturbed.pt"), tmp_path / "cache")
    reference = _predictor(artifacts)
    truths = [pseudo_truth(reference, f) for f in frames]
    result = fidelity(_predictor(perturbed), frames, truths)
    assert result["fidelity"] < 0.8, result["fidelity"]


@pytest.mark.slow
def test_fidelity_on_video_frames_through_the_cli(tmp_path, cache_dir):
    import cv2

    import ultralytics

    video = tmp_path / "clip.avi"
    image = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (image.shape[1], image.shape[0]))
    for shift in range(4):
        writer.write(np.roll(image, shift * 8, axis=1))
    writer.release()
    result = run_cli("val", "--reference", "default", "--source", str(video), "--runtime", "onnxruntime",
                     "--imgsz", "320", "--cache-dir", str(cache_dir), "--out", str(tmp_path),
                     "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "r.json").read_text())[0]
    assert record["kind"] == "accuracy" and record["evaluation"]["mode"] == "reference"
    assert record["evaluation"]["frames"] == 4 and record["accuracy"]["fidelity"] > 0.95
    # frames that calibrated the model are left out; the reference runs at its own (larger) size
    result = run_cli("val", "--reference", "default", "--source", str(video), "--runtime", "onnxruntime",
                     "--imgsz", "320", "--first-frame", "3", "--reference-imgsz", "480", "--cache-dir",
                     str(cache_dir), "--out", str(tmp_path), "--json", str(tmp_path / "r2.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "r2.json").read_text())[0]
    assert record["evaluation"]["frames"] == 1 and record["evaluation"]["first_frame"] == 3
    assert record["evaluation"]["reference_imgsz"] == [480, 480] and record["trial"]["imgsz"] == [320, 320]
    assert 0 < record["accuracy"]["fidelity"] < 1  # another scale: close to the reference's poses, not the same
    result = run_cli("val", "--reference", "default", "--source", str(video), "--first-frame", "4",
                     "--imgsz", "320", "--cache-dir", str(cache_dir), "--out", str(tmp_path))
    assert result.returncode == 2 and "from frame 4 on" in result.stderr


@pytest.mark.slow
def test_val_and_bench_records_share_the_trial_identity(tmp_path, cache_dir):
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    common = ["--runtime", "openvino", "--threads", "2", "--imgsz", "320", "--cache-dir", str(cache_dir),
              "--out", str(tmp_path)]
    val = run_cli("val", "--reference", "default", "--source", str(assets), *common)
    bench = run_cli("bench", *common, "--iters", "3", "--min-seconds", "0", "--warmup", "1", "--warmup-seconds", "0")
    assert val.returncode == 0 and bench.returncode == 0, val.stderr + bench.stderr
    from posebench.results import ResultStore

    records = ResultStore(tmp_path / "results.jsonl").read()
    assert {r.kind for r in records} == {"accuracy", "latency"}
    assert len({r.identity.config_id for r in records}) == 1  # one configuration, two trials
    assert len({r.trial_id for r in records}) == 2


# --- bad data: one clear message, never silently mis-scored -------------------------------------------------

def _tiny_dataset(root: Path, label_text: str, image: bytes | None = None) -> Path:
    import cv2

    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    if image is None:
        cv2.imwrite(str(root / "images" / "val" / "1.jpg"), np.full((64, 96, 3), 127, np.uint8))
    else:
        (root / "images" / "val" / "1.jpg").write_bytes(image)
    (root / "labels" / "val" / "1.txt").write_text(label_text)
    (root / "data.yaml").write_text("path: .\nval: images/val\nkpt_shape: [17, 3]\nnames: {0: person}\n")
    return root / "data.yaml"


def test_label_line_with_wrong_value_count_names_file_and_line(tmp_path):
    line = "0 0.5 0.5 0.2 0.2 " + " ".join(["0.5 0.5 2"] * 16)  # 16 keypoints, not 17
    data = _tiny_dataset(tmp_path, "0 0.5 0.5 0.2 0.2 " + " ".join(["0.5 0.5 2"] * 17) + "\n" + line + "\n")
    with pytest.raises(DataError, match=r"1\.txt:2: 53 values, expected 56"):
        load_dataset(data)


def test_corrupt_image_is_reported_and_left_out(tmp_path):
    data = _tiny_dataset(tmp_path, "", image=b"\xff\xd8 not really a jpeg")
    good = tmp_path / "images" / "val" / "2.jpg"
    import cv2

    cv2.imwrite(str(good), np.full((64, 96, 3), 127, np.uint8))
    dataset = load_dataset(data)
    assert [s.image.name for s in dataset.samples] == ["2.jpg"]
    assert len(dataset.problems) == 1 and "1.jpg" in dataset.problems[0] and "corrupt" in dataset.problems[0]


def test_keypoint_count_mismatch_with_the_model_is_refused(tmp_path):
    data = _tiny_dataset(tmp_path, "0 0.5 0.5 0.2 0.2 " + " ".join(["0.5 0.5"] * 5) + "\n")
    data.write_text(data.read_text().replace("[17, 3]", "[5, 2]"))
    dataset = load_dataset(data)
    with pytest.raises(DataError, match=r"keypoints of shape \[17, 3\].*kpt_shape \[5, 2\]"):
        dataset.check_model((17, 3))


@pytest.mark.parametrize("args,message", [
    (["--data", "nowhere/data.yaml"], "does not exist"),
    (["--data", "x.csv"], "data YAML or a COCO keypoints JSON"),
    ([], "give either --data"),
    (["--reference", "default"], "--reference needs --source"),
    (["--reference", "default", "--source", "no/such/video.avi"], "does not exist"),
])
def test_val_bad_input_is_one_clear_line(args, message, tmp_path):
    result = run_cli("val", *args, "--out", str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_data_yaml_without_path_given_by_a_relative_path(mini, monkeypatch):
    """No `path` key: the images are found beside the YAML, however the YAML itself was named."""
    from posebench.compress.finetune import stage_dataset

    monkeypatch.chdir(mini.parent)
    relative = Path("..") / mini.parent.name / mini.name / "coco-pose-mini.yaml"
    assert len(load_dataset(relative).samples) == 12
    staged = stage_dataset(relative, mini.parent / "staged")
    assert len(load_dataset(staged).samples) == 12


@pytest.mark.slow
def test_val_on_the_judging_set_matches_yolo_val_of_the_same_onnx_with_intervals(coco_pose_val, artifacts, tmp_path):
    """The 750-image judging set: posebench's ONNX Runtime val and `yolo val` of the same ONNX agree (mAP50-95
    within 0.001), and every mAP is printed with its 95 % interval."""
    from ultralytics import YOLO

    onnx_path = artifacts.get("onnx", VAL_IMGSZ)
    data = coco_pose_val / "coco-pose-val.yaml"
    result = run_cli("val", "--model", str(onnx_path), "--data", str(data), "--runtime", "onnxruntime",
                     "--out", str(tmp_path / "out"), "--json", str(tmp_path / "val.json"), timeout=900)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "val.json").read_text())[0]
    ours = record["accuracy"]
    assert ours["images"] == 750 and ours["instances"] == 2085
    theirs = YOLO(str(onnx_path), task="pose").val(data=str(data), imgsz=VAL_IMGSZ[0], rect=False, batch=1,
                                                   conf=0.001, iou=0.7, device="cpu", plots=False, verbose=False)
    assert ours["pose"]["map50_95"] == pytest.approx(theirs.pose.map, abs=0.001)
    assert ours["box"]["map50_95"] == pytest.approx(theirs.box.map, abs=0.001)
    for group, metric in (("pose", "map50_95"), ("pose", "map50"), ("box", "map50_95"), ("coco", "AP")):
        low, high = ours["intervals"][group][metric]
        value = ours[group][metric if group != "coco" else "AP"]
        assert low < value < high and high - low < 0.08, (group, metric)  # +-2 points on 750 images
        assert f"{value:.3f} [{low:.3f}, {high:.3f}]" in result.stdout
    assert ours["coco"]["ground_truth"] == "built from labels (area = box x 0.53)"
