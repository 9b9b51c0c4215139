"""Channel pruning of yolo11n-pose at 640x640 on OpenVINO, side by side with Ultralytics' own int8 export.

For each MACs target: the channel-pruned model in fp32 and int8 (PTQ, calibrated on street-video frames 0-149),
timed interleaved in fresh processes (model-mode p50, 2 threads), and scored on coco-pose-mini val+train2017
(pose mAP50-95 through OpenVINO). No recovery training here: this is the curve recovery has to lift.

    python benchmarks/channel_pruning.py [--macs 0.85 0.7 0.55] [--rounds 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from side_by_side import interleaved_latency, ultralytics_openvino_int8

from posebench.compress.recipe import Recipe
from posebench.compress.run import CompressOptions, calibration_dataset, compress
from posebench.environment import fingerprint
from posebench.export import ArtifactStore
from posebench.models import resolve_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _street_frames(limit: int):  # noqa: ANN202 - (name, image) pairs, frames 0..limit-1
    from posebench.evaluate.validate import iter_frames

    return iter_frames(SHARED / "street-video" / "street.avi", max_frames=limit)


def labelled_copy(work: Path) -> Path:
    """A writable copy of coco-pose-mini in `work` (Ultralytics writes label caches beside the data); returns its
    val+train2017 data YAML (42 labelled images)."""
    data = work / "coco-pose-mini"
    shutil.copytree(SHARED / "coco-pose-mini", data)
    both = data / "both.yaml"
    both.write_text((data / "coco-pose-mini.yaml").read_text().replace("val: images/val",
                                                                       "val: [images/val, images/train2017]"))
    return both


def _pose_map(xml: Path, data: Path, imgsz: int) -> float:
    from posebench.evaluate.data import load_dataset
    from posebench.evaluate.validate import Predictor, validate
    from posebench.export import read_metadata
    from posebench.runtimes import create_backend

    meta = read_metadata(xml) if Path(f"{xml}.meta.json").exists() else {"kpt_shape": [17, 3], "end2end": False}
    with create_backend("openvino", xml, threads=2) as backend:
        predictor = Predictor(backend, (imgsz, imgsz), tuple(meta["kpt_shape"]), end2end=bool(meta.get("end2end")))
        result = validate(predictor, load_dataset(data, split="val"))
    return float(result["pose"]["map50_95"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macs", type=float, nargs="+", default=[0.85, 0.7, 0.55])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="posebench-channels-"))
    both = labelled_copy(work)
    calib = calibration_dataset(_street_frames(150), work / "calibration", (17, 3))
    cache = work / "cache"
    artifacts = {"ultralytics-int8": {"openvino": ultralytics_openvino_int8(work, calib)}}
    dense = ArtifactStore(resolve_model("default"), cache)
    artifacts["fp32"] = {"openvino": dense.get("openvino", (640, 640))}
    summaries = {}
    for macs in args.macs:
        label = f"ch{round(macs * 100)}"
        recipe = Recipe.from_yaml(f"name: {label}\nmodifiers:\n  - type: channel_pruning\n    macs: {macs}\n"
                                  "  - type: quantization\n    calibration_images: 150\n")
        out = work / label
        summary = compress(resolve_model("default"), recipe, out,
                           options=CompressOptions(calibration=SHARED / "street-video" / "street.avi",
                                                   cache_dir=cache), on_progress=print)
        summaries[label] = summary["channel_pruning"]
        pruned = ArtifactStore(resolve_model(out / "model.pt"), cache)
        artifacts[f"{label}-fp32"] = {"openvino": pruned.get("openvino", (640, 640))}
        artifacts[f"{label}-int8"] = {"openvino": out / summary["bundle"]["artifacts"]["openvino"]}
    latency = interleaved_latency(artifacts, rounds=args.rounds, seconds=args.seconds, imgsz=(640, 640))
    reference = latency["ultralytics-int8|openvino"]["p50_ms"]
    rows = []
    for variant, by_runtime in artifacts.items():
        key = f"{variant}|openvino"
        if key not in latency:
            continue
        kept = summaries.get(variant.rsplit("-", 1)[0], {}).get("macs_kept", 1.0)
        rows.append({"variant": variant, "macs_kept": kept, "p50_ms": latency[key]["p50_ms"],
                     "speedup_vs_ultralytics_int8": reference / latency[key]["p50_ms"],
                     "pose_map50_95": _pose_map(by_runtime["openvino"], both, 640),
                     "rounds_p50_ms": [r["p50_ms"] for r in latency[key]["rounds"]]})
    env = fingerprint()
    isa = env["int8_path"]
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Channel pruning, yolo11n-pose 640x640, OpenVINO, 2 threads ({env['cpu_model']}, {isa})",
             "", "No recovery training. int8: PTQ calibrated on street-video frames 0-149; pose mAP50-95 on "
             "coco-pose-mini val+train2017 (42 images) through OpenVINO; p50 = median over rounds of model-mode p50.",
             "", "| variant | conv MACs kept | p50 ms | x vs Ultralytics int8 | pose mAP50-95 | rounds p50 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['macs_kept']:.2f} | {r['p50_ms']:.1f} | {r['speedup_vs_ultralytics_int8']:.2f} "
                     f"| {r['pose_map50_95']:.4f} | {', '.join(f'{v:.1f}' for v in r['rounds_p50_ms'])} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / f"channel_pruning-{isa}.md").write_text(text)
    (args.out / f"channel_pruning-{isa}.json").write_text(json.dumps({"rows": rows, "pruning": summaries,
                                                                      "environment": env}, indent=2))


if __name__ == "__main__":
    main()
