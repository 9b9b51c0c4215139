"""The end-to-end pipeline: fast pre-processing paths give the validator's poses, and `bench --mode e2e` times
every stage of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, run_cli, run_here

from posebench.evaluate.preprocess import Letterboxer, letterbox, letterbox_plan


def test_letterboxer_gives_the_validators_pixels_for_any_frame_shape():
    rng = np.random.default_rng(0)
    for shape in [(720, 1280), (1080, 810), (480, 640), (97, 333), (640, 640), (100, 60)]:
        image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
        for imgsz in [(640, 640), (384, 640), (160, 224), (640, 384)]:
            expected, lb = letterbox(image, imgsz)
            boxer = Letterboxer(imgsz)
            got, lb2 = boxer(image)
            assert got.shape == (*imgsz, 3) and lb2 == lb
            assert np.array_equal(got, expected), (shape, imgsz)
            got, _ = boxer(image)  # the reused canvas still gives the same pixels
            assert np.array_equal(got, expected)
    steps, _ = letterbox_plan((720, 1280), (384, 640))
    assert steps == ((640, 360),)  # 16:9 into 384x640: one resize, 12 grey rows above and below


def _frames() -> list[np.ndarray]:
    from posebench.pipeline import default_source, load_frames

    frames = load_frames(default_source())  # bus.jpg, zidane.jpg: people, portrait and landscape
    video = SHARED_DATA / "street-video" / "street.avi"
    if video.is_file():
        frames += load_frames(video, 40)[::8]
    return frames


def _matched_distance(a, b) -> tuple[float, float, int]:
    """Largest box-corner and keypoint distance between detections matched by IoU (> 0.5), and the unmatched."""
    from posebench.evaluate.postprocess import box_iou

    if not len(a) or not len(b):
        return 0.0, 0.0, len(a) + len(b)
    iou = box_iou(a.boxes, b.boxes)
    pairs = [(i, int(iou[i].argmax())) for i in range(len(a)) if iou[i].max() > 0.5]
    box = max((float(np.abs(a.boxes[i] - b.boxes[j]).max()) for i, j in pairs), default=0.0)
    kpt = max((float(np.abs(a.keypoints[i, :, :2] - b.keypoints[j, :, :2]).max()) for i, j in pairs), default=0.0)
    return box, kpt, len(a) + len(b) - 2 * len(pairs)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_fused_and_vectorised_paths_agree_with_the_validator_within_a_pixel(runtime, artifacts):
    from posebench.evaluate.validate import Predictor
    from posebench.pipeline import PREDICT_NMS, open_pipeline
    from posebench.runtimes import create_backend

    imgsz = (384, 640)
    artifact = artifacts.get("openvino" if runtime == "openvino" else "onnx", imgsz)
    frames = _frames()
    reference = Predictor(create_backend(runtime, artifact, threads=2), imgsz, (17, 3), PREDICT_NMS)
    expected = [reference(f) for f in frames]
    assert sum(len(d) for d in expected) >= len(frames)  # the check compares real poses, not empty frames
    for path in ("fused", "vectorised"):
        pipeline = open_pipeline(runtime, artifact, threads=2, preprocess=path)
        assert pipeline.preprocess == path
        for frame, want in zip(frames, expected):
            box, kpt, unmatched = _matched_distance(pipeline(frame), want)
            assert unmatched == 0 and box <= 1.0 and kpt <= 1.0, (path, box, kpt, unmatched)
            assert all(t > 0 for t in pipeline.last_ns)
        pipeline.backend.close()


def test_auto_preprocess_fuses_where_the_runtime_can_and_refuses_where_it_cannot():
    from posebench.errors import InvalidInputError
    from posebench.pipeline import resolve_preprocess
    from posebench.runtimes import backend_class

    assert resolve_preprocess("auto", backend_class("openvino")) == "fused"
    assert resolve_preprocess("auto", backend_class("onnxruntime")) == "vectorised"  # measured no faster fused
    assert resolve_preprocess("fused", backend_class("onnxruntime")) == "fused"
    assert resolve_preprocess("auto", backend_class("torch")) == "vectorised"
    with pytest.raises(InvalidInputError, match="cannot fuse"):
        resolve_preprocess("fused", backend_class("torch"))
    with pytest.raises(InvalidInputError, match="unknown pre-processing path"):
        resolve_preprocess("gpu", backend_class("torch"))


@pytest.mark.slow
def test_fused_path_scores_coco_pose_mini_as_the_validator(mini, tmp_path, cache_dir):
    """pose mAP50-95 through the fused path (OpenVINO's PrePostProcessor) equals the validator's within 0.002."""
    out = {}
    for path in ("reference", "fused"):
        proc = run_cli("val", "--runtime", "openvino", "--threads", "2", "--data", str(mini / "coco-pose-mini.yaml"),
                       "--imgsz", "640", "--preprocess", path, "--cache-dir", str(cache_dir), "--out",
                       str(tmp_path / path), "--json", str(tmp_path / f"{path}.json"))
        assert proc.returncode == 0, proc.stderr
        record = json.loads((tmp_path / f"{path}.json").read_text())[0]
        assert record["accuracy"]["settings"]["preprocess"] == path
        out[path] = record["accuracy"]["pose"]["map50_95"]
    assert out["reference"] > 0.4
    assert abs(out["fused"] - out["reference"]) <= 0.002, out


@pytest.mark.slow
def test_bench_e2e_times_every_stage_on_real_frames(tmp_path, cache_dir):
    out = tmp_path / "e2e"
    proc = run_cli("bench", "--mode", "e2e", "--runtime", "openvino,torch", "--threads", "1", "--imgsz", "160,224",
                   "--iters", "20", "--min-seconds", "0", "--warmup", "3", "--warmup-seconds", "0", "--cache-dir",
                   str(cache_dir), "--out", str(out), "--json", str(tmp_path / "e2e.json"))
    assert proc.returncode == 0, proc.stderr
    records = json.loads((tmp_path / "e2e.json").read_text())
    assert [r["trial"]["pipeline"]["preprocess"] for r in records] == ["fused", "vectorised"]
    for r in records:
        assert r["status"] == "ok" and r["trial"]["mode"] == "e2e" and r["protocol"]["mode"] == "e2e"
        assert r["trial"]["pipeline"]["source"] == Path(r["protocol"]["source"]).name
        stages, total = r["stages"], r["latency"]
        assert set(stages) == {"pre", "infer", "post"} and total["count"] >= 20
        assert all(stages[s]["p50_ms"] > 0 for s in stages)
        # the total is timed around the whole call: the stages plus next to nothing
        staged = sum(s["mean_ms"] for s in stages.values())
        assert staged <= total["mean_ms"] <= staged * 1.05 + 0.05
        assert stages["infer"]["p50_ms"] < total["p50_ms"]
        assert r["frames"] >= 2 and "compute" not in r
    # model mode records do not collide with end-to-end ones
    model = run_cli("bench", "--runtime", "openvino", "--threads", "1", "--imgsz", "160,224", "--iters", "5",
                    "--min-seconds", "0", "--warmup", "1", "--warmup-seconds", "0", "--cache-dir", str(cache_dir),
                    "--out", str(out), "--json", str(tmp_path / "model.json"))
    assert model.returncode == 0, model.stderr
    assert json.loads((tmp_path / "model.json").read_text())[0]["trial_id"] != records[0]["trial_id"]
    # the report keeps the two apart: model mode in the latency table, e2e in its own table with the stages
    report = run_cli("report", str(out / "results.jsonl"), "--out", str(tmp_path / "report"), "--budget-ms", "1000")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    e2e_section = text.split("## End to end")[1].split("\n## ")[0]
    row = next(line for line in e2e_section.splitlines() if line.startswith("| yolo11n-pose") and "openvino@1" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "fused" and float(cells[10]) > 0  # x model mode: the model-mode row of the same configuration
    latency_section = text.split("## Latency")[1].split("\n## ")[0]
    assert latency_section.count("openvino@1") == 1 and "torch@1" not in latency_section  # torch was e2e only
    assert (tmp_path / "report" / "e2e-stages.png").read_bytes()[:4] == b"\x89PNG"
    assert "Machine: " in text and "cores)" not in latency_section.splitlines()[2]  # named once, not per column


def test_bench_e2e_bad_input_is_one_clear_line(tmp_path):
    proc = run_here("bench", "--mode", "e2e", "--source", str(tmp_path / "nope.mp4"), "--runtime", "null",
                   "--threads", "1", "--imgsz", "160,224", "--out", str(tmp_path))
    assert proc.returncode != 0 and "nope.mp4 does not exist" in proc.stderr
    proc = run_here("bench", "--source", str(tmp_path), "--runtime", "null", "--threads", "1", "--out", str(tmp_path))
    assert proc.returncode != 0 and "add --mode e2e" in proc.stderr
    proc = run_cli("bench", "--mode", "e2e", "--preprocess", "fused", "--runtime", "torch", "--threads", "1",
                   "--imgsz", "160,224", "--iters", "2", "--min-seconds", "0", "--out", str(tmp_path), "--json",
                   str(tmp_path / "r.json"))
    record = json.loads((tmp_path / "r.json").read_text())[0]
    assert proc.returncode != 0 and record["status"] == "error" and "cannot fuse" in record["error"]


@pytest.mark.slow
def test_study_times_end_to_end_beside_ultralytics_predict(tmp_path, cache_dir):
    """A study with `latency: {mode: both, pipelines: [posebench, ultralytics]}`: model mode, posebench's pipeline
    and Ultralytics' own predict around the same artifact (posebench's IR, given the metadata Ultralytics reads),
    each its own trial; the report puts the reference rows in the end-to-end table."""
    from ultralytics.utils import ASSETS

    study = tmp_path / "rt.yaml"
    study.write_text(f"""name: rt
models: [default]
variants: {{base: null}}
runtimes: [openvino]
threads: [1]
imgsz: 160
latency: {{mode: both, pipelines: [posebench, ultralytics], source: {ASSETS}, iters: 8, min_seconds: 0,
          warmup: 2, warmup_seconds: 0, probe: false}}
""")
    proc = run_cli("study", str(study), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    timed = [r for r in records if r["kind"] == "latency"]
    assert all(r["status"] == "ok" for r in timed), [r.get("error") for r in timed]
    kinds = {(r["trial"].get("mode", "model"), (r["trial"].get("pipeline") or {}).get("pipeline", "posebench"))
             for r in timed}
    assert kinds == {("model", "posebench"), ("e2e", "posebench"), ("e2e", "ultralytics")}
    assert len({json.dumps(r["trial"], sort_keys=True) for r in timed}) == 3  # 3 configurations
    assert len({r["trial_id"] for r in timed}) == len(timed) == 6  # x 2 interleaved rounds, each a trial of its own
    ultra = next(r for r in timed if (r["trial"].get("pipeline") or {}).get("pipeline") == "ultralytics")
    assert ultra["pipeline"]["pipeline"] == "ultralytics" and ultra["stages"]["infer"]["p50_ms"] > 0
    from posebench.machine.cpu import bf16_arithmetic, cpu_flags

    bf16 = bf16_arithmetic(cpu_flags())  # Ultralytics sets no precision hint on OpenVINO
    assert ultra["pipeline"]["openvino_inference_precision"] == ("bf16" if bf16 else "f32")
    # timed around the whole predict call: at least the sum of the stages Ultralytics reports
    assert ultra["latency"]["mean_ms"] >= sum(s["mean_ms"] for s in ultra["stages"].values())
    report = run_cli("report", str(tmp_path / "out" / "results.jsonl"), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    section = (tmp_path / "report" / "report.md").read_text().split("## End to end")[1].split("\n## ")[0]
    assert "| ultralytics |" in section and "| fused |" in section
