"""What does matching the input shape to the footage cost, at each precision? yolo11n-pose on the street video:
each deployment at 384x640 (16:9) scored against the same deployment at 640x640 (issue 12: the aspect-matched
shape must keep fidelity >= 0.99 against the 640x640 model), and both against the fp32 model at 640x640.

    python benchmarks/shape_fidelity.py [--work DIR]

int8 is posebench's default PTQ (OpenVINO, the keypoint branch and decode in float), calibrated on frames 0-149 at
each size. Fidelity: COCO keypoint AP against the reference's poses on frames 150-204 (held out), every 4th frame,
and every 3rd of frames 0-149. Writes OUT/shape_fidelity-<int8 path>.md/.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from int8_fidelity import PTQ, ROOT, VIDEO, compress
from side_by_side import openvino_predictor, street_frame_sets, video_frames

SIZES = {"384x640": (384, 640), "640x640": (640, 640)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/posebench-shape-fidelity"))
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
    irs: dict[str, dict[str, Path]] = {"fp32": {k: base.get("openvino", size) for k, size in SIZES.items()}, "int8": {}}
    for key, (h, w) in SIZES.items():
        text = PTQ.format(name=f"ptq-{key}", what="the keypoint branch and the decode in float",
                          preset="yolo-pose-float-head", add="[]").replace("imgsz: [384, 640]", f"imgsz: [{h}, {w}]")
        bundle = compress(text, f"ptq-{key}", args.work, frames)
        irs["int8"][key] = ArtifactStore(resolve_model(str(bundle))).get("openvino", (h, w))

    sets = street_frame_sets(VIDEO)
    predictor = openvino_predictor

    def truths(path: Path, size: tuple[int, int]) -> dict[str, list]:
        reference = predictor(path, size)
        return {k: [pseudo_truth(reference, f) for f in v] for k, v in sets.items()}

    fp32_640 = truths(irs["fp32"]["640x640"], SIZES["640x640"])
    rows = []
    for precision, by_size in irs.items():
        own_640 = fp32_640 if precision == "fp32" else truths(by_size["640x640"], SIZES["640x640"])
        for key, size in SIZES.items():
            candidate = predictor(by_size[key], size)
            row = {"precision": precision, "size": key,
                   "vs_same_at_640": {k: fidelity(candidate, sets[k], own_640[k])["fidelity"] for k in sets},
                   "vs_fp32_640": {k: fidelity(candidate, sets[k], fp32_640[k])["fidelity"] for k in sets}}
            rows.append(row)
            print(row, flush=True)
    isa = env.get("int8_path", "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"shape_fidelity-{isa}.json").write_text(json.dumps(
        {"environment": {k: env.get(k) for k in ("cpu_model", "int8_path", "isa", "usable_cores")}, "rows": rows},
        indent=2))
    lines = [f"# What the footage-matched input shape costs, per precision ({env.get('cpu_model')}, {isa})", "",
             "yolo11n-pose, OpenVINO, street video. Fidelity = COCO keypoint AP against a reference's poses (1.0 = "
             "the same poses). 'vs same at 640': against the same precision's deployment at 640x640 (what the shape "
             "alone costs); 'vs fp32 640': against the fp32 model at 640x640 (shape and precision together). int8: "
             "posebench's PTQ, calibrated on frames 0-149 at each size.", "",
             "| precision | input | " + " | ".join(f"vs same at 640, {k}" for k in sets) + " | " +
             " | ".join(f"vs fp32 640, {k}" for k in sets) + " |", "|---" * (2 + 2 * len(sets)) + "|"]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['size']} | " + " | ".join(f"{r['vs_same_at_640'][k]:.4f}" for k in sets)
                     + " | " + " | ".join(f"{r['vs_fp32_640'][k]:.4f}" for k in sets) + " |")
    (args.out / f"shape_fidelity-{isa}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
