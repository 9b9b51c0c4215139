"""Int8 study (issue: Quantization): accuracy and latency of int8 PTQ variants against fp32, and
against Ultralytics' own OpenVINO int8 export, measured side by side.

yolo11n-pose at 640. Ours: calibrated on 64 street-video frames (disjoint from the evaluation
images), presets yolo-pose-float-head (default) and yolo-pose-float-decode. Ultralytics:
`export(format="openvino", quantize=8)` calibrated on coco-pose-mini train2017 (as the issue's
anchor). Accuracy on coco-pose-mini val+train2017 through our validator; batch-1 latency at 2
threads, interleaved over rounds. Writes benchmarks/results/int8_study.{json,md}.

Run: .venv/bin/python benchmarks/int8_study.py [--rounds 2] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from posebench.export import ArtifactStore
from posebench.compress.recipe import Recipe
from posebench.compress.run import CompressOptions, compress
from posebench.machine.environment import fingerprint
from posebench.evaluate.data import load_dataset
from posebench.evaluate.validate import Predictor, validate
from posebench.models import resolve_model
from posebench.runtimes import create_backend
from side_by_side import interleaved_latency, ultralytics_openvino_int8

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data"
OUT = HERE / "results"
IMGSZ = (640, 640)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    if not (DATA / "coco-pose-mini").is_dir():
        sys.exit(f"needs the labelled data at {DATA / 'coco-pose-mini'}")
    work = Path(tempfile.mkdtemp(prefix="int8-study-"))
    data = work / "coco-pose-mini"
    shutil.copytree(DATA / "coco-pose-mini", data)
    text = (data / "coco-pose-mini.yaml").read_text()
    (data / "both.yaml").write_text(text.replace("val: images/val", "val: [images/val, images/train2017]"))
    (data / "calib.yaml").write_text(text.replace("val: images/val", "val: images/train2017"))
    cache = work / "cache"
    dense = resolve_model(None)
    fp32 = ArtifactStore(dense, cache)

    # artifacts: name -> (runtime, path)
    artifacts = {"fp32": {"onnxruntime": fp32.get("onnx", IMGSZ), "openvino": fp32.get("openvino", IMGSZ),
                          "deepsparse": fp32.get("onnx", IMGSZ)}}
    for preset in ("yolo-pose-float-head", "yolo-pose-float-decode"):
        recipe = Recipe.from_yaml(f"name: int8-{preset}\nmodifiers:\n  - type: quantization\n    imgsz: 640\n"
                                  f"    calibration_images: 64\n    ignored_preset: {preset}\n")
        out = work / preset
        compress(dense, recipe, out, options=CompressOptions(calibration=DATA / "street-video" / "street.avi",
                                                             cache_dir=cache))
        bundle = ArtifactStore(resolve_model(out), cache)
        artifacts[f"int8 ({preset})"] = {"onnxruntime": bundle.get("onnx", IMGSZ),
                                         "openvino": bundle.get("openvino", IMGSZ),
                                         "deepsparse": bundle.get("onnx", IMGSZ)}
    artifacts["int8 (Ultralytics export)"] = {"openvino": ultralytics_openvino_int8(work, data / "calib.yaml")}

    dataset = load_dataset(data / "both.yaml")
    results: dict = {"environment": fingerprint(), "accuracy": {}, "latency": {}}
    for variant, by_runtime in artifacts.items():
        for runtime, path in by_runtime.items():
            with create_backend(runtime, path, threads=2) as backend:
                r = validate(Predictor(backend, IMGSZ, (17, 3)), dataset)
            results["accuracy"][f"{variant}|{runtime}"] = {"pose": r["pose"], "box": r["box"]}
            print(f"{variant:32s} {runtime:12s} pose mAP50 {r['pose']['map50']:.3f} mAP50-95 {r['pose']['map50_95']:.3f}",
                  flush=True)
    results["latency"] = interleaved_latency(artifacts, rounds=args.rounds, seconds=args.seconds, imgsz=IMGSZ)
    OUT.mkdir(exist_ok=True)
    (OUT / "int8_study.json").write_text(json.dumps(results, indent=2, default=str))
    write_markdown(results)
    return 0


def write_markdown(results: dict) -> None:
    env = results["environment"]
    lines = ["# Int8 study: yolo11n-pose 640x640, coco-pose-mini val+train2017 (42 images, 111 people)", "",
             f"Machine: {env['cpu_model']}, {env['usable_cores']} cores, ISA {', '.join(env['isa'])}; 2 threads, batch 1.",
             "", "| variant | runtime | pose mAP50 | pose mAP50-95 | box mAP50-95 | p50 ms | mean ms | p99 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for key, acc in results["accuracy"].items():
        variant, runtime = key.split("|")
        lat = results["latency"].get(key, {})
        fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else "-"  # noqa: E731
        lines.append(f"| {variant} | {runtime} | {acc['pose']['map50']:.3f} | {acc['pose']['map50_95']:.3f} | "
                     f"{acc['box']['map50_95']:.3f} | {fmt(lat.get('p50_ms'))} | {fmt(lat.get('mean_ms'))} | "
                     f"{fmt(lat.get('p99_ms'))} |")
    lat = results["latency"]
    ours, theirs = lat.get("int8 (yolo-pose-float-head)|openvino"), lat.get("int8 (Ultralytics export)|openvino")
    if ours and theirs:
        lines += ["", f"OpenVINO int8, ours (float head) vs Ultralytics' export: p50 {ours['p50_ms']:.2f} vs "
                      f"{theirs['p50_ms']:.2f} ms, ratio {theirs['p50_ms'] / ours['p50_ms']:.2f}x (>1: ours faster)."]
    decode = lat.get("int8 (yolo-pose-float-decode)|openvino")
    if decode and theirs:
        lines += [f"OpenVINO int8, ours (float decode only) vs Ultralytics' export: ratio "
                  f"{theirs['p50_ms'] / decode['p50_ms']:.2f}x."]
    (OUT / "int8_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
