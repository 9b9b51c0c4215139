"""Shared by the benchmark scripts: Ultralytics' own OpenVINO int8 export (the reference our int8 artifacts
race) and batch-1 latency measured side by side, interleaved over rounds."""

from __future__ import annotations

import shutil
from pathlib import Path
from statistics import median
from typing import Any

from posebench import measure_in_child
from posebench import default_model_path
from posebench.runtimes.base import parse_runtime_spec
from posebench.ultralytics_adapter import export_ultralytics


def ultralytics_openvino_int8(work: Path, calibration_yaml: Path, imgsz: int = 640) -> Path:
    """`yolo export format=openvino int8=True` calibrated on the YAML's val split (the same call a study's
    `ultralytics_export` variant makes: `posebench.models.export_ultralytics`); returns the IR .xml."""
    pt = work / "ultralytics" / "yolo11n-pose.pt"  # a copy: Ultralytics writes the export beside the weights
    pt.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(default_model_path(), pt)
    exported = export_ultralytics(pt, fmt="openvino", imgsz=(imgsz, imgsz), int8=True, data=calibration_yaml)
    return next(exported.glob("*.xml"))


def build_once(recipe_text: str, out: Path, frames: Path, *, pseudo_labels: bool = False) -> Path:
    """`posebench compress` with this recipe into `out`, calibrated on `frames` (and fine-tuned on them, pseudo-
    labelled, for QAT), once per folder; built without any oneDNN ISA cap (an artifact is built once and deployed
    anywhere, the cap is for measuring)."""
    import os
    import subprocess
    import sys

    if not (out / "bundle.json").is_file() and not any(out.glob("*_openvino_model")):
        recipe = out.with_name(out.name + ".yaml")
        recipe.write_text(recipe_text)
        print(f"building {out.name}", flush=True)
        uncapped = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
        subprocess.run([sys.executable, "-m", "posebench", "compress", "--recipe", str(recipe), "--calib", str(frames),
                        "--out", str(out)] + (["--pseudo-labels", str(frames)] if pseudo_labels else []), check=True,
                       stdout=subprocess.DEVNULL, env=uncapped)
    return out


def ultralytics_ir(folder: Path) -> Path:
    """The IR .xml of the Ultralytics OpenVINO export (a `*_openvino_model` folder) under `folder`."""
    found = sorted(folder.rglob("*_openvino_model/*.xml"))
    if not found:
        raise SystemExit(f"no Ultralytics OpenVINO export under {folder}")
    return found[0]


def video_frames(video: Path, folder: Path, count: int = 150, step: int = 1) -> Path:
    """Every `step`-th of the first `count` frames of `video` as JPEGs in `folder` (written once)."""
    import cv2

    if not folder.is_dir():
        folder.mkdir(parents=True)
        capture = cv2.VideoCapture(str(video))
        for i in range(count):
            ok, frame = capture.read()
            if ok and i % step == 0:
                cv2.imwrite(str(folder / f"f{i:04d}.jpg"), frame)
    return folder


def interleaved_latency(artifacts: dict[str, dict[str, Path]], *, rounds: int, seconds: float,
                        imgsz: tuple[int, int], threads: int = 2) -> dict[str, dict[str, Any]]:
    """Every (variant, runtime) artifact once per round, each in a fresh process; medians over rounds,
    keyed "variant|runtime" (every round's numbers kept under "rounds"). A runtime may carry options, as on the
    command line: "openvino[inference_precision=bf16]"."""
    samples: dict[str, list[dict]] = {}
    width = max(len(v) for v in artifacts)
    for k in range(rounds):
        for variant, by_runtime in artifacts.items():
            for runtime, path in by_runtime.items():
                name, options = parse_runtime_spec(runtime)  # e.g. openvino[inference_precision=bf16]
                spec = {"runtime": name, "artifact": str(path), "threads": threads, "imgsz": list(imgsz),
                        "options": options, "protocol": {"iters": 100, "min_seconds": seconds, "warmup_iters": 20,
                                                    "warmup_seconds": 2.0, "max_seconds": 0.0}}
                result = measure_in_child(spec)
                if result["status"] != "ok":
                    print(f"{variant} {runtime}: {result['error']}", flush=True)
                    continue
                samples.setdefault(f"{variant}|{runtime}", []).append(result["latency"])
                print(f"round {k + 1} {variant:{width}s} {runtime:12s} p50 {result['latency']['p50_ms']:.2f} ms",
                      flush=True)
    return {key: {"p50_ms": median(r["p50_ms"] for r in runs), "mean_ms": median(r["mean_ms"] for r in runs),
                  "p99_ms": median(r["p99_ms"] for r in runs), "rounds": runs} for key, runs in samples.items()}


def street_frame_sets(video: Path) -> dict[str, list]:
    """The frame sets the fidelity benchmarks judge on: frames 150-204 (held out from every calibration and
    training, which see 0-149), every 4th frame, and every 3rd of the calibration frames."""
    from posebench import FrameSource

    frames = [image for _, image in FrameSource(video).frames()]
    return {"held out (150-204)": frames[150:], "every 4th frame": frames[::4],
            "calibration (0-149, every 3rd)": frames[:150:3]}


def openvino_predictor(path: Path, size: tuple[int, int], threads: int = 2, precision: str = "f32") -> Any:
    """posebench's validator pipeline on an OpenVINO IR (keypoint shape and head from its metadata)."""
    from posebench import Predictor
    from posebench import read_metadata
    from posebench import create_backend

    meta = read_metadata(path)
    backend = create_backend("openvino", path, threads=threads, options={"inference_precision": precision})
    return Predictor(backend, size, tuple(meta["kpt_shape"]), end2end=meta.get("end2end"))
