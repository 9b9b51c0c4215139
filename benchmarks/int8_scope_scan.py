"""Scan which head blocks of an int8 pose model must stay in float (`posebench.compress.float_scope`) and write the
answer as a recipe preset.

The int8 model is posebench's int8 with only the decode in float (recipes/int8-ptq-float-decode.yaml), calibrated on
the first 128 coco-pose-recovery images; the scan scores on the last `--images` coco-pose-recovery images (disjoint
from the calibration, and never coco-pose-val: the judge), pose mAP50-95 through OpenVINO.

    python benchmarks/int8_scope_scan.py --model default --write-recipe recipes/int8-ptq-float-scan.yaml

Writes benchmarks/results/int8-scope-scan/<model>-<kind>.{md,json}; with --write-recipe, the preset (the decode
preset plus one `ignored_add` pattern per named unit, in the order the scan added them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from card_speed import ROOT, int8_ir, recovery_images

from posebench import fingerprint, resolve_model
from posebench.compress.float_scope import scan_float_scope
from posebench.compress.images import calibration_dataset
from posebench.compress.quantize import canonical_node_name, head_index
from posebench.evaluate.data import load_dataset
from posebench.evaluate.validate import Predictor, validate
from posebench.export import ArtifactStore
from posebench.runtimes.openvino import OpenVINOBackend

RECOVERY_YAML = ROOT.parent / "shared" / "data" / "coco-pose-recovery" / "coco-pose-recovery.yaml"
RECIPE = """\
# Int8 PTQ whose float scope was chosen by measurement (benchmarks/int8_scope_scan.py, posebench.compress.float_scope):
# the decode in float, plus the head blocks a per-block scan on coco-pose-recovery named, most accuracy per float MAC
# first, until the model was within {max_drop} pose mAP50-95 of fp32 on the scan images ({images} images; {model},
# scanned on {kind}: fp32 {fp32:.3f}, decode-only int8 {int8:.3f}, this scope {final:.3f}).
# Calibrate on images disjoint from your evaluation set: posebench compress --recipe THIS --calib IMAGES_OR_VIDEO
name: int8-scan
description: int8 PTQ, the decode and the head blocks a sensitivity scan named in float
modifiers:
  - type: quantization
    precision: int8
    imgsz: 640
    calibration_images: 128
    calibration_method: MinMax
    per_channel: true
    reduce_range: auto         # 7-bit weights where the target has no VNNI (u8 x s8 saturation); or true / false
    target_isa: auto           # int8 kernels to build for: auto (this machine), avx2, avx512, avx512_vnni, avx_vnni, amx
    ignored_preset: yolo-pose-float-decode
    ignored_add:               # the scan's units: {units}
{patterns}
    ignored_remove: []
"""


def scorer(images: int) -> Any:
    """score(ov.Model) -> pose mAP50-95 on the last `images` coco-pose-recovery images (OpenVINO, auto precision)."""
    import openvino as ov

    if not RECOVERY_YAML.is_file():
        raise SystemExit(f"{RECOVERY_YAML} not found: the scan scores on coco-pose-recovery (../shared/data)")
    data = load_dataset(RECOVERY_YAML)
    data = replace(data, samples=sorted(data.samples, key=lambda s: s.image)[-images:])
    folder = Path(tempfile.mkdtemp(prefix="scope-scan-"))

    def score(model: Any) -> float:
        path = folder / "model.xml"
        ov.save_model(model, str(path), compress_to_fp16=False)
        backend = OpenVINOBackend(path, threads=2, options={"inference_precision": "auto"})
        return validate(Predictor(backend, (640, 640), (17, 3), end2end=False), data, uncertainty=None)[
            "pose"]["map50_95"]
    return score


def main() -> None:
    import openvino as ov

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="'default' or a shipped model's name")
    parser.add_argument("--images", type=int, default=300, help="scan images (the last N of coco-pose-recovery)")
    parser.add_argument("--max-drop", type=float, default=0.005)
    parser.add_argument("--min-gain", type=float, default=0.002)
    parser.add_argument("--max-units", type=int, default=8)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "scope-scan")
    parser.add_argument("--modules", action="store_true", help="whole modules before the head are candidates too")
    parser.add_argument("--write-recipe", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "int8-scope-scan")
    args = parser.parse_args()

    env = fingerprint()
    work, cache = args.work, args.work / "cache"
    if not (work / "calibration" / "calibration.yaml").is_file():
        calibration_dataset(recovery_images(128), work / "calibration", (17, 3))
    tag = "dense" if args.model == "default" else args.model
    int8 = int8_ir(args.model, ROOT / "recipes" / "int8-ptq-float-decode.yaml", work / f"{tag}-decode",
                   work / "calibration" / "images", cache)
    fp32 = ArtifactStore(resolve_model(args.model), cache).get("openvino", (640, 640))
    core = ov.Core()
    quantized, float_model = core.read_model(str(int8)), core.read_model(str(fp32))
    start = time.perf_counter()
    scan = scan_float_scope(quantized, float_model, scorer(args.images), max_drop=args.max_drop,
                            min_gain=args.min_gain, max_units=args.max_units, modules=args.modules,
                            on_unit=lambda u, g: print(f"  {u:10s} {g:+.4f}", flush=True))
    minutes = (time.perf_counter() - start) / 60
    head = head_index(canonical_node_name(op.get_friendly_name()) for op in quantized.get_ops())
    final = scan.path[-1] if scan.path else scan.int8
    lines = [f"# Int8 float-scope scan: {tag}, {env['cpu_kind']}", "",
             f"Machine: {env['cpu_model']} ({env['cpu_kind']}), 2 threads, OpenVINO, float parts in the precision "
             f"the CPU picks for an int8 model. Scored: pose mAP50-95 on the last {args.images} coco-pose-recovery "
             f"images; int8 calibrated on the first 128. {minutes:.1f} min.", "",
             f"fp32 {scan.fp32:.4f}; int8, decode in float {scan.int8:.4f}; target fp32 - {args.max_drop}.", "",
             "| unit | gain in float | MMACs | chosen (order) |", "|---|---|---|---|"]
    for unit, gain in scan.gains.items():
        order = scan.chosen.index(unit) + 1 if unit in scan.chosen else ""
        lines.append(f"| {unit} | {gain:+.4f} | {scan.macs[unit] / 1e6:.1f} | {order} |")
    lines += ["", "Cumulative: " + ", ".join(f"+{u} {s:.4f}" for u, s in zip(scan.chosen, scan.path)),
              f"Reached the target: {scan.reached}."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{tag}-{env['cpu_kind']}" + ("-modules" if args.modules else "")
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps(
        {**scan.to_dict(), "patterns": scan.patterns(head), "images": args.images, "minutes": minutes,
         "environment": env}, indent=2, default=str))
    if args.write_recipe:
        patterns = "\n".join(f"      - '{p}'" for p in scan.patterns(head)) or "      []"
        args.write_recipe.write_text(RECIPE.format(
            max_drop=args.max_drop, images=args.images, model=tag, kind=env["cpu_kind"], fp32=scan.fp32,
            int8=scan.int8, final=final, units=", ".join(scan.chosen) or "none", patterns=patterns))


if __name__ == "__main__":
    main()
