"""Pruning study on coco-pose-mini (issue: Pruning): accuracy after recovery, and latency ratios.

For yolo11n-pose at 30 / 50 / 70 % sparsity (the shipped recipe shape: early backbone at 0.8x,
first conv, DFL, pose head and final prediction convs dense):
  one-shot | one-shot + BN re-calibration (train2017 images) | gradual + fine-tuning on the labelled
  train2017 split | gradual + fine-tuning on pseudo-labelled street-video frames.
Evaluated on the held-out val split at 640 through onnxruntime (the validator: box and pose
mAP50 / mAP50-95), with the wall time of each recovery. Then batch-1 latency at 2 threads of the
dense and fine-tuned pruned models on deepsparse, onnxruntime and openvino, interleaved in one run.

Resumable: each finished step is saved in benchmarks/results/pruning_study.json and skipped on re-run.
Run: .venv/bin/python benchmarks/pruning_study.py [--epochs 10] [--video-epochs 6] [--train-imgsz 320]
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
from posebench import measure_in_child
from posebench import Recipe
from posebench import CompressOptions, compress
from posebench import fingerprint
from posebench import load_dataset
from posebench import Predictor, validate
from posebench import default_model_path, resolve_model
from posebench import create_backend

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data"
RESULTS = HERE / "results" / "pruning_study.json"


def recipe_at(sparsity: float, schedule: str) -> Recipe:
    base = Recipe.load(REPO / "recipes" / "yolo-pose-p50.yaml")
    m = base.pruning()[0]
    groups = (replace(m.groups[0], sparsity=round(0.8 * sparsity, 3)), replace(m.groups[1], sparsity=sparsity))
    m = replace(m, groups=groups, schedule=schedule)
    return replace(base, modifiers=(m,), name=f"p{int(sparsity * 100)}-{schedule}")


def evaluate(checkpoint: Path, data: Path, cache: Path) -> dict:
    store = ArtifactStore(resolve_model(checkpoint), cache)
    with create_backend("onnxruntime", store.get("onnx", (640, 640)), threads=2) as backend:
        r = validate(Predictor(backend, (640, 640), (17, 3)), load_dataset(data))
    return {"box": r["box"], "pose": r["pose"], "coco_ap": r["coco"]["AP"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--video-epochs", type=int, default=6)
    parser.add_argument("--video-frames", type=int, default=100)
    parser.add_argument("--train-imgsz", type=int, default=320)
    parser.add_argument("--sparsities", default="0.3,0.5,0.7")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved latency rounds (median reported)")
    args = parser.parse_args()
    if not (DATA / "coco-pose-mini").is_dir():
        sys.exit(f"needs the labelled data at {DATA / 'coco-pose-mini'}")
    work = Path(tempfile.gettempdir()) / "posebench-pruning-study"  # stable: a re-run reuses checkpoints
    work.mkdir(exist_ok=True)
    data_root = work / "coco-pose-mini"
    shutil.copytree(DATA / "coco-pose-mini", data_root, dirs_exist_ok=True)
    val_yaml = data_root / "coco-pose-mini.yaml"
    train_yaml = data_root / "train.yaml"
    train_yaml.write_text(val_yaml.read_text().replace("val: images/val", "val: images/train2017"))
    cache = work / "cache"
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"steps": {}}
    results["environment"] = fingerprint()

    def step(key: str, fn) -> dict:
        if key in results["steps"]:
            return results["steps"][key]
        print(f"[{time.strftime('%H:%M:%S')}] {key} ...", flush=True)
        t0 = time.perf_counter()
        value = fn()
        value["wall_s"] = round(time.perf_counter() - t0, 1)
        results["steps"][key] = value
        RESULTS.write_text(json.dumps(results, indent=2))
        print(f"    {json.dumps(value)[:300]}", flush=True)
        return value

    dense = resolve_model(None)
    step("dense", lambda: {"checkpoint": str(default_model_path()), **evaluate(default_model_path(), val_yaml, cache)})
    checkpoints = {}
    for s in (float(v) for v in args.sparsities.split(",")):
        tag = f"p{int(s * 100)}"
        variants = {
            "one-shot": (recipe_at(s, "one-shot"), CompressOptions(epochs=0)),
            "one-shot+bn": (recipe_at(s, "one-shot"), CompressOptions(epochs=0,
                                                                      bn_recalibration=data_root / "images" / "train2017")),
            "finetune-labels": (recipe_at(s, "gradual").with_epochs(args.epochs),
                                CompressOptions(data=train_yaml, imgsz=args.train_imgsz, batch=8)),
            "finetune-video": (recipe_at(s, "gradual").with_epochs(args.video_epochs),
                               CompressOptions(pseudo_labels=DATA / "street-video" / "street.avi",
                                               max_frames=args.video_frames, imgsz=args.train_imgsz, batch=8)),
        }
        for name, (recipe, options) in variants.items():
            out = work / tag / name

            def run(recipe=recipe, options=options, out=out) -> dict:
                summary = compress(dense, recipe, out, options=options)
                return {"checkpoint": summary["checkpoint"], "targeted_sparsity": summary["targeted_sparsity"],
                        "model_sparsity": summary["model_sparsity"], "timings": summary["timings"],
                        "epochs": summary["epochs"], **evaluate(Path(summary["checkpoint"]), val_yaml, cache)}
            value = step(f"{tag}/{name}", run)
            if name == "finetune-labels":
                checkpoints[tag] = Path(value["checkpoint"])

    # latency, side by side: dense and each pruned model per runtime, interleaved over rounds, 2 threads
    models = {"dense": default_model_path(), **{k: v for k, v in checkpoints.items() if v.is_file()}}
    for k in range(args.rounds):
        for runtime, fmt, tag in ((r, f, t) for r, f in (("deepsparse", "onnx"), ("onnxruntime", "onnx"),
                                                        ("openvino", "openvino")) for t in models):
            checkpoint = models[tag]
            def lat(checkpoint=checkpoint, runtime=runtime, fmt=fmt) -> dict:
                artifact = ArtifactStore(resolve_model(checkpoint), cache).get(fmt, (640, 640))
                spec = {"runtime": runtime, "artifact": str(artifact), "threads": 2, "imgsz": [640, 640],
                        "options": {}, "protocol": {"iters": 200, "min_seconds": args.latency_seconds,
                                                    "warmup_iters": 20, "warmup_seconds": 2.0, "max_seconds": 0.0}}
                result = measure_in_child(spec)
                return result["latency"] if result["status"] == "ok" else {"error": result["error"]}
            step(f"latency/{runtime}/{tag}/r{k}", lat)
    write_markdown(results)
    return 0


def write_markdown(results: dict) -> None:
    steps = results["steps"]
    env = results["environment"]
    lines = ["# Pruning study: yolo11n-pose on coco-pose-mini (val split, 12 images / 31 people, imgsz 640)", "",
             f"Machine: {env['cpu_model']}, {env['usable_cores']} cores, ISA {', '.join(env['isa'])}", "",
             "| variant | sparsity (targeted / whole model) | pose mAP50 | pose mAP50-95 | box mAP50 | box mAP50-95 | "
             "COCO AP | recovery time |", "|---|---|---|---|---|---|---|---|"]
    d = steps["dense"]
    lines.append(f"| dense | 0 | {d['pose']['map50']:.3f} | {d['pose']['map50_95']:.3f} | {d['box']['map50']:.3f} | "
                 f"{d['box']['map50_95']:.3f} | {d['coco_ap']:.3f} | - |")
    for key, v in steps.items():
        if "/" not in key or key.startswith("latency"):
            continue
        t = v["timings"]
        recovery = sum(val for k, val in t.items() if k != "prune_s")
        lines.append(f"| {key} | {v['targeted_sparsity']:.3f} / {v['model_sparsity']:.3f} | {v['pose']['map50']:.3f} | "
                     f"{v['pose']['map50_95']:.3f} | {v['box']['map50']:.3f} | {v['box']['map50_95']:.3f} | "
                     f"{v['coco_ap']:.3f} | {recovery:.0f} s ({v['epochs']} ep) |")
    lines += ["", "## Batch-1 latency at 2 threads, 640x640 (measured side by side in one run)", "",
              "| runtime | model | mean ms | p50 ms | p99 ms | speed-up vs dense |", "|---|---|---|---|---|---|"]
    from statistics import median

    grouped: dict[tuple[str, str], list[dict]] = {}
    for key, v in steps.items():
        if key.startswith("latency/") and "error" not in v and key.count("/") == 3:
            _, runtime, tag, _ = key.split("/")
            grouped.setdefault((runtime, tag), []).append(v)
    for (runtime, tag), runs in grouped.items():
        mean = median(r["mean_ms"] for r in runs)
        dense = grouped.get((runtime, "dense"))
        ratio = f"{median(r['mean_ms'] for r in dense) / mean:.2f}x" if dense else "-"
        lines.append(f"| {runtime} | {tag} | {mean:.2f} | {median(r['p50_ms'] for r in runs):.2f} | "
                     f"{median(r['p99_ms'] for r in runs):.2f} | {ratio} |")
    lines += ["", "Latency: median over interleaved rounds of each (runtime, model) measurement."]
    (HERE / "results" / "pruning_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
