"""QAT study (issue: Quantization): int8 quantization-aware training against PTQ and fp32, side by side.

yolo11n-pose at 640, every int8 variant with the default preset (yolo-pose-float-head), initial ranges /
calibration from 64 street-video frames. Variants:
- fp32; int8 PTQ (ONNX Runtime QDQ / NNCF IR);
- int8 QAT on labels: fine-tuned on coco-pose-mini train2017 (30 labelled images), so its fair score is on
  val (12 images) only;
- int8 QAT on pseudo-labels: fine-tuned on 100 street-video frames labelled by the fp32 model (disjoint from
  every evaluation image), scored on val+train2017 like the PTQ target;
- p50: one-shot 50 % pruning + BatchNorm re-calibration on the train2017 images (fp32), then int8 PTQ, or
  QAT on labels (zeros held). (BatchNorm re-calibrated on the street video instead collapses this model:
  pose mAP50 0.22 on val; the statistics must come from the deployment domain.)
- int8 QAT float-decode (labels): the same with only the decode in float (the keypoint branch quantized too),
  against Ultralytics' own OpenVINO int8 export (calibrated on train2017), side by side on OpenVINO.
Accuracy through each runtime with our validator; batch-1 latency at 2 threads, interleaved over rounds.
Writes benchmarks/results/qat_study.{json,md}.

Run: .venv/bin/python benchmarks/qat_study.py [--rounds 3] [--seconds 6] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from posebench import ArtifactStore
from posebench import Recipe
from posebench import CompressOptions, compress
from posebench import fingerprint
from posebench import load_dataset
from posebench import Predictor, validate
from posebench import resolve_model
from posebench import create_backend
from side_by_side import interleaved_latency, ultralytics_openvino_int8

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data"
OUT = HERE / "results"
IMGSZ = (640, 640)
RUNTIMES = {"onnxruntime": "onnx", "openvino": "openvino", "deepsparse": "onnx"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--epochs", type=int, default=3, help="QAT epochs")
    args = parser.parse_args()
    if not (DATA / "coco-pose-mini").is_dir():
        sys.exit(f"needs the labelled data at {DATA / 'coco-pose-mini'}")
    work = Path(tempfile.mkdtemp(prefix="qat-study-"))
    data = work / "coco-pose-mini"
    shutil.copytree(DATA / "coco-pose-mini", data)
    text = (data / "coco-pose-mini.yaml").read_text()
    (data / "both.yaml").write_text(text.replace("val: images/val", "val: [images/val, images/train2017]"))
    (data / "calib.yaml").write_text(text.replace("val: images/val", "val: images/train2017"))
    video = DATA / "street-video" / "street.avi"
    cache = work / "cache"
    dense = resolve_model(None)
    qat = Recipe.load(REPO / "recipes" / "int8-qat.yaml").with_epochs(args.epochs)
    ptq = Recipe.load(REPO / "recipes" / "int8-ptq.yaml")
    ptq = replace(ptq, modifiers=(replace(ptq.modifiers[0], calibration_images=64),))
    pruned = Recipe.load(REPO / "recipes" / "yolo-pose-oneshot-p50.yaml")
    qat_decode = replace(qat, name="int8-qat-float-decode", modifiers=tuple(
        replace(m, ignored_preset="yolo-pose-float-decode") for m in qat.modifiers))
    pruned = replace(pruned, bn_recalibration=replace(pruned.bn_recalibration,
                                                      source=str(data / "images" / "train2017")))
    pruned_ptq = replace(pruned, name="p50+ptq", modifiers=pruned.modifiers + ptq.modifiers)
    pruned_qat = replace(pruned, name="p50+qat", modifiers=pruned.modifiers + qat.modifiers)
    common = {"calibration": video, "cache_dir": cache, "batch": 8, "imgsz": 640}
    builds = {
        "int8 PTQ": (ptq, CompressOptions(**common)),
        "int8 QAT (labels)": (qat, CompressOptions(data=data / "coco-pose-mini.yaml", **common)),
        "int8 QAT float-decode (labels)": (qat_decode, CompressOptions(data=data / "coco-pose-mini.yaml", **common)),
        "int8 QAT (pseudo-labels)": (qat, CompressOptions(pseudo_labels=video, max_frames=100, **common)),
        "p50": (pruned, CompressOptions(**common)),
        "p50 + int8 PTQ": (pruned_ptq, CompressOptions(**common)),
        "p50 + int8 QAT (labels)": (pruned_qat, CompressOptions(data=data / "coco-pose-mini.yaml", **common)),
    }
    fp32 = ArtifactStore(dense, cache)
    artifacts = {"fp32": {rt: fp32.get(fmt, IMGSZ) for rt, fmt in RUNTIMES.items()}}
    build_seconds = {}
    for variant, (recipe, options) in builds.items():
        t0 = time.perf_counter()
        out = work / variant.replace(" ", "_")
        compress(dense, recipe, out, options=options, on_progress=lambda m, v=variant: print(f"[{v}] {m}", flush=True))
        build_seconds[variant] = time.perf_counter() - t0
        store = ArtifactStore(resolve_model(out if (out / "bundle.json").is_file() else out / "model.pt"), cache)
        artifacts[variant] = {rt: store.get(fmt, IMGSZ) for rt, fmt in RUNTIMES.items()}
    artifacts["int8 (Ultralytics OpenVINO export)"] = {"openvino": ultralytics_openvino_int8(work, data / "calib.yaml")}

    splits = {"val": load_dataset(data / "coco-pose-mini.yaml"), "val+train2017": load_dataset(data / "both.yaml")}
    results: dict = {"environment": fingerprint(), "epochs": args.epochs, "build_seconds": build_seconds,
                     "accuracy": {}, "latency": {}}
    for variant, by_runtime in artifacts.items():
        for runtime, path in by_runtime.items():
            with create_backend(runtime, path, threads=2) as backend:
                for split, dataset in splits.items():
                    r = validate(Predictor(backend, IMGSZ, (17, 3)), dataset)
                    results["accuracy"][f"{variant}|{runtime}|{split}"] = {"pose": r["pose"], "box": r["box"]}
                    print(f"{variant:26s} {runtime:12s} {split:14s} pose mAP50 {r['pose']['map50']:.3f} "
                          f"mAP50-95 {r['pose']['map50_95']:.3f}", flush=True)
    results["latency"] = interleaved_latency(artifacts, rounds=args.rounds, seconds=args.seconds, imgsz=IMGSZ)
    OUT.mkdir(exist_ok=True)
    (OUT / "qat_study.json").write_text(json.dumps(results, indent=2, default=str))
    write_markdown(results)
    return 0


def write_markdown(results: dict) -> None:
    env = results["environment"]
    lines = [f"# QAT study: yolo11n-pose 640x640, int8 QAT ({results['epochs']} epochs) vs PTQ vs fp32", "",
             f"Machine: {env['cpu_model']}, {env['usable_cores']} cores, ISA {', '.join(env['isa'])}; 2 threads, "
             "batch 1. val = 12 images; val+train2017 = 42 (the labels variants trained on train2017: use val).", "",
             "| variant | runtime | pose mAP50 (val) | pose mAP50-95 (val) | pose mAP50 (val+train) | "
             "pose mAP50-95 (val+train) | p50 ms | mean ms |", "|---|---|---|---|---|---|---|---|"]
    acc = results["accuracy"]
    keys = sorted({k.rsplit("|", 1)[0] for k in acc}, key=list(dict.fromkeys(k.rsplit("|", 1)[0] for k in acc)).index)
    for key in keys:
        variant, runtime = key.split("|")
        val, both = acc[f"{key}|val"]["pose"], acc[f"{key}|val+train2017"]["pose"]
        lat = results["latency"].get(key, {})
        fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else "-"  # noqa: E731
        lines.append(f"| {variant} | {runtime} | {val['map50']:.3f} | {val['map50_95']:.3f} | {both['map50']:.3f} | "
                     f"{both['map50_95']:.3f} | {fmt(lat.get('p50_ms'))} | {fmt(lat.get('mean_ms'))} |")
    lat = results["latency"]
    theirs = lat.get("int8 (Ultralytics OpenVINO export)|openvino")
    lines.append("")
    for ours in ("int8 PTQ", "int8 QAT (labels)", "int8 QAT float-decode (labels)"):
        if theirs and f"{ours}|openvino" in lat:
            lines.append(f"- OpenVINO p50, {ours} vs Ultralytics' int8 export: {lat[f'{ours}|openvino']['p50_ms']:.2f} vs "
                         f"{theirs['p50_ms']:.2f} ms, speed ratio {theirs['p50_ms'] / lat[f'{ours}|openvino']['p50_ms']:.2f}x "
                         "(>1: ours faster)")
    lines += ["", "Build time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["build_seconds"].items())]
    (OUT / "qat_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
