"""Channel pruning of yolo11n-pose at 640x640 on OpenVINO, side by side with Ultralytics' own int8 export: the
curve of MACs kept against accuracy and latency, for each label-free recovery.

For each MACs target and recovery (`none`; `reconstruct`: least-squares re-fit of the pruned convs to the dense
model's outputs on 32 frames; `distill`: distillation from the dense model on the frames, no labels; both), the
pruned model in int8 (PTQ) and fp32. Data discipline: every fit, distillation and calibration sees street-video frames
0-149 only; judged by pose mAP50-95 on coco-pose-mini val+train2017 (another domain, labelled) and by fidelity on
frames 150-204 (COCO keypoint AP against the dense fp32 model), both through OpenVINO at 640. Latency: model-mode p50,
2 threads, interleaved rounds in fresh processes (one row per MACs target: recovery changes weights, not shapes).

    python benchmarks/channel_pruning.py [--macs 0.9 0.75] [--recovery none reconstruct distill reconstruct+distill]
                                         [--epochs 4] [--rounds 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from side_by_side import interleaved_latency, ultralytics_openvino_int8

from posebench import Recipe
from posebench.compress.images import calibration_dataset
from posebench import CompressOptions
from posebench.compress.run import compress
from posebench import fingerprint
from posebench import ArtifactStore
from posebench import resolve_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _street_frames(limit: int):  # noqa: ANN202 - (name, image) pairs, frames 0..limit-1
    from posebench import iter_frames

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
    from posebench import load_dataset
    from posebench import Predictor, validate
    from posebench import read_metadata
    from posebench import create_backend

    meta = read_metadata(xml) if Path(f"{xml}.meta.json").exists() else {"kpt_shape": [17, 3], "end2end": False}
    with create_backend("openvino", xml, threads=2) as backend:
        predictor = Predictor(backend, (imgsz, imgsz), tuple(meta["kpt_shape"]), end2end=bool(meta.get("end2end")))
        result = validate(predictor, load_dataset(data, split="val"))
    return float(result["pose"]["map50_95"])


DISTILL = "finetune:\n  epochs: {epochs}\n  lr0: 0.0005\n  batch: 8\n  imgsz: 640\ndistillation:\n  task: 0\n"
RECOVERY = {  # name -> recipe lines added to the channel_pruning modifier, and after the modifiers
    "none": ("", ""),
    "reconstruct": ("    reconstruct: true\n", ""),
    "distill": ("", DISTILL),
    "reconstruct+distill": ("    reconstruct: true\n", DISTILL),
}


def _fidelity(xml: Path, frames: list, truths: list) -> float:
    from posebench import Predictor, fidelity
    from posebench import create_backend

    with create_backend("openvino", xml, threads=2) as backend:
        return float(fidelity(Predictor(backend, (640, 640), (17, 3)), frames, truths)["fidelity"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macs", type=float, nargs="+", default=[0.9, 0.75])
    parser.add_argument("--recovery", nargs="+", default=list(RECOVERY), choices=list(RECOVERY))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--allocation", choices=["uniform", "sensitivity"], default="sensitivity")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    from posebench import Predictor, pseudo_truth
    from posebench import create_backend
    from posebench import FrameSource

    work = Path(tempfile.mkdtemp(prefix="posebench-channels-"))
    both = labelled_copy(work)
    video_path = SHARED / "street-video" / "street.avi"
    calib = calibration_dataset(_street_frames(150), work / "calibration", (17, 3))
    cache = work / "cache"
    reference_ir = ultralytics_openvino_int8(work, calib)
    dense = ArtifactStore(resolve_model("default"), cache)
    dense_ir = dense.get("openvino", (640, 640))
    judge = [image for _, image in FrameSource(video_path).frames()][150:]
    with create_backend("openvino", dense_ir, threads=2) as backend:
        reference = Predictor(backend, (640, 640), (17, 3))
        truths = [pseudo_truth(reference, image) for image in judge]
    rows = [{"variant": "ultralytics-int8", "recovery": "-", "macs_kept": 1.0,
             "int8_pose_map50_95": _pose_map(reference_ir, both, 640),
             "int8_fidelity": _fidelity(reference_ir, judge, truths)},
            {"variant": "dense", "recovery": "-", "macs_kept": 1.0, "fp32_pose_map50_95": _pose_map(dense_ir, both, 640),
             "fp32_fidelity": _fidelity(dense_ir, judge, truths)}]
    timed = {"ultralytics-int8": {"openvino": reference_ir}, "dense-fp32": {"openvino": dense_ir}}
    summaries = {}
    for macs in args.macs:
        for recovery in args.recovery:
            label = f"ch{round(macs * 100)}-{recovery}"
            modifier, tail = RECOVERY[recovery]
            recipe = Recipe.from_yaml(f"name: {label}\nmodifiers:\n  - type: channel_pruning\n    macs: {macs}\n"
                                      f"    allocation: {args.allocation}\n"
                                      + modifier + "  - type: quantization\n    calibration_images: 150\n"
                                      + tail.format(epochs=args.epochs))
            out = work / label
            start = time.time()
            summary = compress(resolve_model("default"), recipe, out, on_progress=print,
                               options=CompressOptions(calibration=video_path, max_frames=150, cache_dir=cache,
                                                       pseudo_labels=video_path if tail else None))
            info = summary["channel_pruning"]
            summaries[label] = {k: v for k, v in info.items() if k != "groups"}
            fp32_ir = ArtifactStore(resolve_model(out / "model.pt"), cache).get("openvino", (640, 640))
            int8_ir = out / summary["bundle"]["artifacts"]["openvino"]
            rows.append({"variant": label, "recovery": recovery, "macs_kept": info["macs_kept"],
                         "compress_s": time.time() - start,
                         "fp32_pose_map50_95": _pose_map(fp32_ir, both, 640),
                         "int8_pose_map50_95": _pose_map(int8_ir, both, 640),
                         "fp32_fidelity": _fidelity(fp32_ir, judge, truths),
                         "int8_fidelity": _fidelity(int8_ir, judge, truths)})
            print(rows[-1], flush=True)
            timed[f"ch{round(macs * 100)}-int8"] = {"openvino": int8_ir}
            timed[f"ch{round(macs * 100)}-fp32"] = {"openvino": fp32_ir}
    latency = interleaved_latency(timed, rounds=args.rounds, seconds=args.seconds, imgsz=(640, 640))
    ref_ms = latency["ultralytics-int8|openvino"]["p50_ms"]
    speed = {name: {"p50_ms": latency[f"{name}|openvino"]["p50_ms"],
                    "x_ultralytics_int8": ref_ms / latency[f"{name}|openvino"]["p50_ms"],
                    "rounds_p50_ms": [r["p50_ms"] for r in latency[f"{name}|openvino"]["rounds"]]} for name in timed}
    env = fingerprint()
    isa = env["int8_path"]
    args.out.mkdir(parents=True, exist_ok=True)

    def cell(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [f"# Channel pruning and label-free recovery, yolo11n-pose 640x640, OpenVINO, 2 threads "
             f"({env['cpu_model']}, {isa})", "",
             f"Channels: {args.allocation} allocation, magnitude criterion. Reconstruction (least squares, 32 "
             f"frames) and distillation ({args.epochs} epochs, no task loss) see street-video frames 0-149 only, as does the int8 calibration. pose mAP50-95: coco-pose-mini "
             "val+train2017 (42 labelled images, another domain). Fidelity: COCO keypoint AP against the dense fp32 "
             "model on frames 150-204. All through OpenVINO at 640x640.", "",
             "| variant | recovery | conv MACs kept | pose mAP50-95 fp32 | int8 | fidelity fp32 | int8 | compress s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['recovery']} | {r['macs_kept']:.2f} | {cell(r.get('fp32_pose_map50_95'))} "
                     f"| {cell(r.get('int8_pose_map50_95'))} | {cell(r.get('fp32_fidelity'))} "
                     f"| {cell(r.get('int8_fidelity'))} | {cell(r.get('compress_s'), 0)} |")
    lines += ["", f"Latency (median of {args.rounds} interleaved rounds of model-mode p50):", "",
              "| artifact | p50 ms | x vs Ultralytics int8 | rounds p50 |", "|---|---|---|---|"]
    for name, v in speed.items():
        lines.append(f"| {name} | {v['p50_ms']:.1f} | {v['x_ultralytics_int8']:.2f} | "
                     f"{', '.join(f'{x:.1f}' for x in v['rounds_p50_ms'])} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / f"channel_pruning-{isa}.md").write_text(text)
    (args.out / f"channel_pruning-{isa}.json").write_text(json.dumps({"rows": rows, "latency": speed,
                                                                      "pruning": summaries, "environment": env},
                                                                     indent=2))


if __name__ == "__main__":
    main()
