"""Artifacts made elsewhere: what `yolo export` writes runs through posebench's bench and val as it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import IMGSZ, run_cli, run_here


@pytest.fixture(scope="module")
def exports(tmp_path_factory, default_source) -> Path:
    """A folder holding a copy of the embedded checkpoint: `yolo export` writes beside its model."""
    folder = tmp_path_factory.mktemp("ultralytics-exports")
    shutil.copyfile(default_source.path, folder / "yolo11n-pose.pt")
    return folder


@pytest.fixture(scope="module")
def both(mini) -> Path:
    return mini / "both.yaml"


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _pose_map(out: Path) -> dict[str, float]:
    return {r["trial"]["runtime"]: r["accuracy"]["pose"]["map50_95"] for r in _records(out) if r.get("status") == "ok"}


def test_bare_onnx_needs_kpt_shape_and_a_wrong_one_is_refused(artifacts, tmp_path, cache_dir):
    """No metadata: one clear line asking for --kpt-shape; a keypoint shape the output cannot have, or one that
    contradicts the artifact's own metadata, is refused (exit 2), never decoded as something else."""
    import onnx

    model = onnx.load(str(artifacts.get("onnx", IMGSZ)))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    common = ("--runtime", "onnxruntime", "--threads", "1", "--iters", "3", "--min-seconds", "0", "--warmup", "1",
              "--warmup-seconds", "0", "--cache-dir", str(cache_dir))
    asked = run_here("bench", "--model", str(bare), "--out", str(tmp_path / "a"), *common)
    assert asked.returncode == 2 and "--kpt-shape" in asked.stderr and len(asked.stderr.strip().splitlines()) == 1
    wrong = run_here("bench", "--model", str(bare), "--kpt-shape", "5,3", "--out", str(tmp_path / "b"), *common)
    assert wrong.returncode == 2 and "does not fit" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    ok = run_cli("bench", "--model", str(bare), "--kpt-shape", "17,3", "--out", str(tmp_path / "c"), *common)
    assert ok.returncode == 0, ok.stderr
    record = _records(tmp_path / "c")[0]
    assert record["trial"]["variant"] == "imported" and record["trial"]["imgsz"] == list(IMGSZ)  # size read from it
    contradicts = run_here("bench", "--model", str(artifacts.get("onnx", IMGSZ)), "--kpt-shape", "5,3",
                          "--out", str(tmp_path / "d"), *common)
    assert contradicts.returncode == 2 and "--kpt-shape" in contradicts.stderr


@pytest.mark.slow
def test_yolo_export_onnx_scores_like_posebench_own_export(exports, both, artifacts, tmp_path, cache_dir):
    """`yolo export format=onnx` and `format=openvino` of the embedded weights, validated by posebench (the ONNX on
    onnxruntime and, converted, openvino; the IR folder on openvino), score what posebench's own export of the same
    weights scores; torch cannot run an exported artifact (skipped)."""
    from ultralytics import YOLO

    onnx_file = YOLO(str(exports / "yolo11n-pose.pt")).export(format="onnx", imgsz=640, opset=17, simplify=True)
    theirs = run_cli("val", "--model", onnx_file, "--data", str(both), "--runtime", "onnxruntime,openvino,torch",
                     "--out", str(tmp_path / "theirs"), "--cache-dir", str(cache_dir))
    assert theirs.returncode == 3, theirs.stderr  # torch skipped: an ONNX file is not a checkpoint
    ours = run_cli("val", "--data", str(both), "--runtime", "onnxruntime", "--imgsz", "640",
                   "--out", str(tmp_path / "ours"), "--cache-dir", str(cache_dir))
    assert ours.returncode == 0, ours.stderr
    folder = YOLO(str(exports / "yolo11n-pose.pt")).export(format="openvino", imgsz=640)  # fp32 IR folder
    ir = run_cli("val", "--model", folder, "--data", str(both), "--runtime", "openvino",
                 "--out", str(tmp_path / "theirs-ir"), "--cache-dir", str(cache_dir))
    assert ir.returncode == 0, ir.stderr
    imported, own = _pose_map(tmp_path / "theirs"), _pose_map(tmp_path / "ours")
    assert set(imported) == {"onnxruntime", "openvino"}
    for runtime, value in [*imported.items(), ("openvino IR folder", _pose_map(tmp_path / "theirs-ir")["openvino"])]:
        assert value == pytest.approx(own["onnxruntime"], abs=0.005), (runtime, imported, own)


@pytest.mark.slow
def test_yolo_export_openvino_int8_folder_scores_like_ultralytics_val(exports, both, tmp_path, cache_dir):
    """The folder `yolo export format=openvino int8=True` writes (calibrated on coco-pose-mini), given as --model
    with no --imgsz: posebench's validator scores it as Ultralytics' own `val` of that folder does. Ultralytics
    compiles the IR with no precision hint, so on a CPU with bf16 (AVX512_BF16, AMX) OpenVINO runs its float parts
    in bf16 there (pose mAP50-95 0.594 against 0.585 in f32 on an AMD Zen 4); parity is checked at the precision
    Ultralytics runs, which posebench selects with `openvino[inference_precision=bf16]`."""
    from ultralytics import YOLO

    from posebench.machine.cpu import bf16_arithmetic, cpu_flags
    from posebench.ultralytics_adapter import openvino_as_the_capped_cpu

    runtime = "openvino[inference_precision=bf16]" if bf16_arithmetic(cpu_flags()) else "openvino"

    folder = YOLO(str(exports / "yolo11n-pose.pt")).export(format="openvino", int8=True, imgsz=640,
                                                           data=str(both.parent / "coco-pose-mini.yaml"))
    assert Path(folder).is_dir() and Path(folder).name.endswith("_openvino_model")
    result = run_cli("val", "--model", folder, "--data", str(both), "--runtime", runtime,
                     "--out", str(tmp_path / "ov"), "--cache-dir", str(cache_dir))
    assert result.returncode == 0, result.stderr
    record = next(r for r in _records(tmp_path / "ov") if r.get("kind") == "accuracy")
    assert record["trial"]["precision"] == "int8" and record["trial"]["imgsz"] == [640, 640]
    with openvino_as_the_capped_cpu():  # under ONEDNN_MAX_CPU_ISA=AVX2, Ultralytics' OpenVINO runs f32 too
        reference = YOLO(folder, task="pose").val(data=str(both), imgsz=640, rect=False, batch=1, conf=0.001,
                                                  iou=0.7, device="cpu", plots=False, verbose=False)
    assert record["accuracy"]["pose"]["map50_95"] == pytest.approx(reference.pose.map, abs=0.005)
    assert record["accuracy"]["box"]["map50_95"] == pytest.approx(reference.box.map, abs=0.005)


@pytest.mark.slow
def test_a_study_takes_imported_artifacts_and_model_options(artifacts, tmp_path):
    """`models:` in a study: an ONNX without metadata beside the study file (with its keypoint shape) and a YOLO26
    YAML asked for its one-to-many head, both timed on onnxruntime."""
    import onnx

    model = onnx.load(str(artifacts.get("onnx", IMGSZ)))
    del model.metadata_props[:]
    (tmp_path / "models").mkdir()
    onnx.save(model, str(tmp_path / "models" / "bare.onnx"))
    study = tmp_path / "study.yaml"
    study.write_text(f"""name: imported
models: ["models/bare.onnx[kpt_shape=17x3]", "yolo26n-pose.yaml[head=one2many]"]
variants: {{base: null}}
runtimes: [onnxruntime]
threads: [1]
imgsz: [{IMGSZ[0]}, {IMGSZ[1]}]
latency: {{iters: 3, min_seconds: 0, warmup: 1, warmup_seconds: 0, rounds: 2, probe: false}}
""")
    result = run_cli("study", str(study), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    records = [r for r in _records(tmp_path / "out") if r.get("kind") == "latency"]
    assert {r["trial"]["model"] for r in records} == {"bare[kpt_shape=17x3]", "yolo26n-pose[head=one2many]"}
    assert all(r["status"] == "ok" for r in records) and len(records) == 4
