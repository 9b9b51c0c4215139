"""How faithful is int8 at the footage's aspect? yolo11n-pose at 384x640 on the street video (issue 12's fidelity
goal: >= 0.99 against the 640x640 model), OpenVINO, 2 threads: posebench int8 variants that keep more in float or
train the quantizers, against fp32 at 384x640 and Ultralytics' int8 export at 640x640 (the speed reference).

    python benchmarks/int8_fidelity.py [--work DIR] [--rounds 3] [--qat-epochs 2]

Every int8 variant is calibrated / trained on frames 0-149 only. Fidelity (COCO keypoint AP against the fp32 model
at 640x640) on three frame sets: frames 150-204 (held out), every 4th frame of the video (what
benchmarks/realtime.py reports) and every 3rd of frames 0-149 (seen in calibration). Latency: model-mode p50,
interleaved rounds, every artifact in a fresh process. Writes OUT/int8_fidelity-<int8 path>.md/.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from side_by_side import (build_once, interleaved_latency, openvino_predictor, street_frame_sets, ultralytics_ir,
                          video_frames)

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "data" / "street-video" / "street.avi"
SIZE = (384, 640)
PTQ = """name: {name}
description: int8 PTQ at 384x640, {what}
modifiers:
  - type: quantization
    precision: int8
    imgsz: [384, 640]
    calibration_images: 150
    ignored_preset: {preset}
    ignored_add: {add}
"""
QAT = """name: qat-distill
description: int8 QAT at 384x640, distilled from the float model on the frames (no labels)
modifiers:
  - type: quantization
    precision: int8
    method: qat
    epochs: {epochs}
    lr0: 0.0002
    imgsz: [384, 640]
    calibration_images: 150
    ignored_preset: yolo-pose-float-head
finetune:
  epochs: 0
  batch: 8
  imgsz: 640
distillation:
  task: 0
"""
# name -> (what it keeps in float, preset, extra node-name patterns kept in float)
PTQ_VARIANTS = {
    "ptq-float-kpt-out": ("the keypoint branch's last convs and the decode", "yolo-pose-float-kpt-out", []),
    "ptq": ("the keypoint branch and the decode (posebench's default)", "yolo-pose-float-head", []),
    "ptq-head-float": ("the whole head", "yolo-pose-float-head", [r"^/model\.23/.*"]),
    "ptq-head-neck-out-float": ("the whole head and the three neck outputs it reads", "yolo-pose-float-head",
                                [r"^/model\.23/.*", r"^/model\.(16|19|22)/.*"]),
}


def compress(recipe_text: str, name: str, work: Path, frames: Path, pseudo: bool = False) -> Path:
    return build_once(recipe_text, work / name, frames, pseudo_labels=pseudo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/posebench-int8-fidelity"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if not VIDEO.is_file():
        raise SystemExit(f"{VIDEO} not found: this benchmark needs the project's shared data")
    from posebench import fingerprint
    from posebench import fidelity, pseudo_truth
    from posebench import ArtifactStore
    from posebench import resolve_model

    env = fingerprint()
    args.work.mkdir(parents=True, exist_ok=True)
    frames = video_frames(VIDEO, args.work / "frames0-149")
    base = ArtifactStore(resolve_model(None))
    irs: dict[str, Path] = {"fp32": base.get("openvino", SIZE)}
    for name, (what, preset, add) in PTQ_VARIANTS.items():
        bundle = compress(PTQ.format(name=name, what=f"{what} in float", preset=preset, add=json.dumps(add)), name,
                          args.work, frames)
        irs[name] = ArtifactStore(resolve_model(str(bundle))).get("openvino", SIZE)
    bundle = compress(QAT.format(epochs=args.qat_epochs), "qat-distill", args.work, frames, pseudo=True)
    irs["qat-distill"] = ArtifactStore(resolve_model(str(bundle))).get("openvino", SIZE)
    reference = compress((ROOT / "recipes" / "ultralytics-openvino-int8.yaml").read_text(), "ultralytics-int8-640",
                         args.work, frames)
    reference_ir = ultralytics_ir(reference)

    sets = street_frame_sets(VIDEO)
    predictor = openvino_predictor
    dense = predictor(base.get("openvino", (640, 640)), (640, 640))
    truths = {k: [pseudo_truth(dense, f) for f in v] for k, v in sets.items()}
    fid: dict[str, dict[str, float]] = {}
    for name, ir in irs.items():
        candidate = predictor(ir, SIZE)
        fid[name] = {k: fidelity(candidate, sets[k], truths[k])["fidelity"] for k in sets}
        print(name, fid[name], flush=True)
    timed = {name: {"openvino": ir} for name, ir in irs.items()}
    latency = interleaved_latency(timed, rounds=args.rounds, seconds=args.seconds, imgsz=SIZE)
    ref = interleaved_latency({"ultralytics-int8-640": {"openvino": reference_ir}}, rounds=args.rounds,
                              seconds=args.seconds, imgsz=(640, 640))
    isa = env.get("int8_path", "cpu")
    summary = {"environment": {k: env.get(k) for k in ("cpu_model", "int8_path", "isa", "usable_cores")},
               "fidelity": fid, "latency": {**latency, **ref}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"int8_fidelity-{isa}.json").write_text(json.dumps(summary, indent=2))
    ref_ms = ref["ultralytics-int8-640|openvino"]["p50_ms"]
    lines = [f"# int8 fidelity at 384x640 ({env.get('cpu_model')}, {isa}, 2 threads)", "",
             "yolo11n-pose on the street video; every int8 variant calibrated / trained on frames 0-149. Fidelity: "
             "COCO keypoint AP against the fp32 model at 640x640 (1.0 = the same poses). p50: model mode, "
             f"median of {args.rounds} interleaved rounds (the reference, Ultralytics' OpenVINO int8 export at "
             f"640x640, timed in its own rounds after them: {ref_ms:.1f} ms).", "",
             "| variant (384x640) | " + " | ".join(f"fidelity, {k}" for k in sets) + " | p50 ms | x Ultralytics int8 "
             "640 |", "|---" * (len(sets) + 3) + "|"]
    for name in irs:
        p50 = latency[f"{name}|openvino"]["p50_ms"]
        lines.append(f"| {name} | " + " | ".join(f"{fid[name][k]:.4f}" for k in sets) +
                     f" | {p50:.1f} | {ref_ms / p50:.2f} |")
    (args.out / f"int8_fidelity-{isa}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
