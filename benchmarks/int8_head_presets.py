"""Int8 head presets judged side by side: accuracy on coco-pose-val and speed against Ultralytics' int8 export.

For the dense yolo11n-pose and each `--model` (a shipped channel-pruned model): posebench int8 with the default
preset (decode + keypoint branch in float), the scanned preset (recipes/int8-ptq-float-scan.yaml: decode + the head
blocks benchmarks/int8_scope_scan.py named) and decode-only; all calibrated on the same 128 coco-pose-recovery
images. Accuracy: pose mAP50-95 on coco-pose-val through OpenVINO at 640 (float parts in the precision the CPU picks
for an int8 model), 95 % bootstrap intervals, each preset paired with the default of the same model. Speed: p50 at
640x640, batch 1, 2 threads, `--rounds` interleaved rounds in fresh processes, median of per-round ratios against
Ultralytics' `export format=openvino int8=True` of the dense model.

    python benchmarks/int8_head_presets.py --model yolo11n-pose-m80

Writes benchmarks/results/int8-head-presets/<kind>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from card_speed import REFERENCE, ROOT, capped_words, int8_ir, ratios, recovery_images
from side_by_side import interleaved_latency, ultralytics_openvino_int8

from posebench import Predictor, create_backend, fingerprint, load_dataset, validate
from posebench.compress.images import calibration_dataset
from posebench.evaluate.compare import difference

VAL = ROOT.parent / "shared" / "data" / "coco-pose-val" / "coco-pose-val.yaml"
PRESETS = {"default": "int8-ptq.yaml", "scan": "int8-ptq-float-scan.yaml", "decode": "int8-ptq-float-decode.yaml"}


def judge(ir: Path) -> dict[str, Any]:
    """Accuracy on coco-pose-val through OpenVINO at 640, with intervals and per-image matches."""
    with create_backend("openvino", ir, threads=2, options={"inference_precision": "auto"}) as backend:
        return validate(Predictor(backend, (640, 640), (17, 3), end2end=False), load_dataset(VAL, split="val"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="a shipped model's name (repeat)")
    parser.add_argument("--preset", action="append", default=[], help=f"presets to compare (default: all of "
                                                                      f"{', '.join(PRESETS)})")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "head-presets")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "int8-head-presets")
    args = parser.parse_args()
    if not VAL.is_file():
        raise SystemExit(f"{VAL} not found: this benchmark judges on coco-pose-val (../shared/data)")
    presets = args.preset or list(PRESETS)

    env = fingerprint()
    work, cache = args.work, args.work / "cache"
    calib_yaml = work / "calibration" / "calibration.yaml"
    if not calib_yaml.is_file():
        calibration_dataset(recovery_images(128), work / "calibration", (17, 3))
    made = sorted((work / "ultralytics").glob("*_openvino_model/*.xml"))
    timed: dict[str, dict[str, Path]] = {REFERENCE: {"openvino": made[0] if made else
                                                     ultralytics_openvino_int8(work, calib_yaml)}}
    accuracy: dict[str, dict[str, Any]] = {}
    for model in ["default", *args.model]:
        tag = "dense" if model == "default" else model
        for preset in presets:
            ir = int8_ir(model, ROOT / "recipes" / PRESETS[preset], work / f"{tag}-{preset}",
                         work / "calibration" / "images", cache)
            timed[f"{tag}-{preset}"] = {"openvino": ir}
            found = work / f"{tag}-{preset}" / "coco-pose-val.json"
            if not found.is_file():
                print(f"judging {tag}-{preset} on coco-pose-val", flush=True)
                found.write_text(json.dumps(judge(ir)))
            accuracy[f"{tag}-{preset}"] = json.loads(found.read_text())
    accuracy[REFERENCE] = {}
    latency = interleaved_latency(timed, rounds=args.rounds, seconds=args.seconds, imgsz=(640, 640))

    rows = ["| model | preset | pose mAP50-95 [95 %] | minus the default preset (points, paired) | p50 ms "
            "| x Ultralytics' int8 export | per round |", "|---|---|---|---|---|---|---|",
            f"| dense | Ultralytics int8 export | not judged here | - | {latency[REFERENCE + '|openvino']['p50_ms']:.2f} "
            "| 1.00 | - |"]
    summary: dict[str, Any] = {}
    for key, acc in accuracy.items():
        if key == REFERENCE:
            continue
        tag, preset = key.rsplit("-", 1)
        pose, ci = acc["pose"]["map50_95"], acc["intervals"]["pose"]["map50_95"]
        d = difference(acc, accuracy[f"{tag}-default"]) if preset != "default" else None
        x, each = ratios(latency, f"{key}|openvino")
        summary[key] = {"pose_map50_95": pose, "interval": ci, "x_ultralytics_int8": x, "rounds": each,
                        "minus_default": d.describe() if d else None, "p50_ms": latency[f"{key}|openvino"]["p50_ms"]}
        rows.append(f"| {tag} | {preset} | {pose:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {d.describe() if d else '-'} "
                    f"| {latency[key + '|openvino']['p50_ms']:.2f} | {x:.2f} | {', '.join(f'{e:.2f}' for e in each)} |")
    native, capped = capped_words(env)
    capped += "; accuracy as judged before, uncapped" if native else ""
    text = (f"# Int8 head presets, {env['cpu_kind']}\n\nMachine: {env['cpu_model']} ({env['cpu_kind']}{capped}), "
            f"2 threads. Accuracy: coco-pose-val (750 images) through OpenVINO at 640, float parts in the precision the "
            f"CPU picks for an int8 model. Speed: {args.rounds} interleaved rounds, median of per-round ratios against "
            f"Ultralytics' int8 export of the dense model. All int8 calibrated on the same 128 coco-pose-recovery "
            f"images.\n\n" + "\n".join(rows) + "\n")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = env["cpu_kind"] + (f"-capped-on-{native}" if native else "")
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps({"results": summary, "latency": latency,
                                                                   "environment": env}, indent=2, default=str))


if __name__ == "__main__":
    main()
