"""Latency-aware channel allocation (issue 34, item 3): the sensitivity scan's steps priced by the conv time they
save on this machine's OpenVINO int8 deployment (a measured table of conv shapes) instead of the MACs they save.

For each target (`macs:0.80`: the shipped recipes' MACs pricing; `latency:0.80`: the table's), the removals are
found by the sensitivity scan on the same 8 coco-pose-recovery images (as `posebench compress` does), applied one
shot to yolo11n-pose (own BatchNorm statistics), then each model is: judged on coco-pose-val through OpenVINO f32 at
640 (95 % intervals; paired with the first target), quantized with posebench's default int8 (128 other
coco-pose-recovery images) and timed side by side with Ultralytics' `export format=openvino int8=True` of the dense
model (`--rounds` interleaved rounds, fresh processes, p50 at 640x640, 2 threads). Each row shows the conv MACs
kept, the table's estimated conv time kept, and the measured speed.

    python benchmarks/latency_allocation.py --target macs:0.80 --target latency:0.80 --target latency:0.75
    python benchmarks/latency_allocation.py --target macs:0.80 --target latency:0.85:between  # between blocks too
    python benchmarks/latency_allocation.py --target macs:0.80 --target macs:0.75:ap  # scan scored by pose mAP

Resumable (WORK/results.json). Writes benchmarks/results/latency-allocation/<kind>.{md,json}.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

from bn_settle import RECOVERY, judge
from card_speed import REFERENCE, ROOT, capped_words, int8_ir, ratios, recovery_images
from side_by_side import interleaved_latency, ultralytics_openvino_int8

from posebench import fingerprint
from posebench.evaluate.compare import difference


def prune(dense: Any, target: str, scan: Any, table: Any, ap_images: int) -> tuple[Any, dict[str, Any]]:
    """A one-shot copy of `dense` pruned to `target` ("macs:0.8" / "latency:0.8"; ":between" added: the channels
    between blocks are groups too; ":ap": each scan step scored by pose mAP50-95 on `ap_images` labelled
    coco-pose-recovery images) by the sensitivity allocation."""
    from posebench.compress.channels import ChannelPlan, prune_channels_
    from posebench.compress.scan_damage import labelled_samples

    kind, value, *more = target.split(":")
    net = copy.deepcopy(dense)
    plan = ChannelPlan(**{kind: float(value)}, allocation="sensitivity", between="between" in more,
                       damage="ap" if "ap" in more else "outputs", damage_images=ap_images)
    labelled = labelled_samples(RECOVERY, ap_images) if "ap" in more else None
    info = prune_channels_(net, plan, (640, 640), scan, latency_table=table, labelled=labelled)
    return net, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", default=[],
                        help="macs:F or latency:F, :between to prune between blocks too, :ap to score the scan's "
                             "steps by pose mAP on labelled recovery images (repeat)")
    parser.add_argument("--ap-images", type=int, default=64, help=":ap targets: labelled images per scan step")
    parser.add_argument("--scan-limit", type=int, default=200, help="scan images spread over this many (compress: 200)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tag", default="", help="results named <kind>-<tag>.{md,json} (several runs side by side)")
    parser.add_argument("--judge-only", action="store_true",
                        help="allocate, judge and quantize, then stop (time later, with the machine otherwise idle)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "latency-allocation")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latency-allocation")
    args = parser.parse_args()
    targets = args.target or ["macs:0.80", "latency:0.80"]

    from posebench.compress.channel_plan import DEFAULT_FLOAT_CONVS
    from posebench.compress.conv_latency import openvino_profile_ms, openvino_table
    from posebench.compress.images import calibration_dataset, scan_images
    from posebench.models import default_model_path
    from posebench.ultralytics_adapter import load_yolo

    env = fingerprint()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    store = work / "results.json"
    results: dict[str, Any] = json.loads(store.read_text()) if store.is_file() else {}
    table = openvino_table()
    dense = load_yolo(default_model_path()).model.float().eval()
    scan = scan_images(RECOVERY, limit=args.scan_limit)
    calib_yaml = work / "calibration" / "calibration.yaml"
    if not calib_yaml.is_file():
        calibration_dataset(recovery_images(128), work / "calibration", (17, 3))
    made = sorted((work / "ultralytics").glob("*_openvino_model/*.xml"))
    timed = {REFERENCE: {"openvino": made[0] if made else ultralytics_openvino_int8(work, calib_yaml)}}
    def int8(label: str) -> Path:
        return int8_ir(str(work / label / "model.pt"), ROOT / "recipes" / "int8-ptq.yaml", work / f"{label}-int8",
                       work / "calibration" / "images", work / "cache")

    for target in ["dense", *targets]:
        label = target.replace(":", "")
        if label not in results:
            if target == "dense":
                net, info = copy.deepcopy(dense), {"macs_kept": 1.0}
            else:
                print(f"allocating {target}", flush=True)
                net, info = prune(dense, target, scan, table, args.ap_images)
            print(f"judging {label}", flush=True)
            results[label] = {"target": target, "macs_kept": info["macs_kept"], "groups": info.get("groups"),
                              "sensitivity": info.get("sensitivity"), "latency_estimate": info.get("latency_estimate"),
                              "accuracy": judge(net, work, label)}
            store.write_text(json.dumps(results))
        timed[label] = {"openvino": int8(label)}
        if target == "dense" and not table.anchors:  # price each conv at its time inside the deployed dense int8
            table.anchor_(dense, (640, 640), openvino_profile_ms(timed[label]["openvino"]), DEFAULT_FLOAT_CONVS)
    table.save()
    if args.judge_only:
        return
    dense_ms = table.network_ms(dense, (640, 640), DEFAULT_FLOAT_CONVS)
    latency = interleaved_latency(timed, rounds=args.rounds, seconds=args.seconds, imgsz=(640, 640))

    native, capped = capped_words(env)
    kind = env["cpu_kind"] + (f"-capped-on-{native}" if native else "")
    first = targets[0].replace(":", "")
    rows = [("| target | conv MACs kept | estimated int8 conv time kept | pose mAP50-95 fp32 [95 %] | minus "
             f"{first} (points, paired) | int8 p50 ms | x Ultralytics' int8 export | per round |"),
            "|---|---|---|---|---|---|---|---|"]
    out: dict[str, Any] = {"env": env, "table": table.identity, "rounds": args.rounds, "dense_conv_ms": dense_ms,
                           "deployed_conv_ms": {k: v for k, (_, v) in table.anchors.items()}, "rows": {}}
    for label, result in results.items():
        if label not in timed:
            continue
        pose, interval = result["accuracy"]["pose"]["map50_95"], result["accuracy"]["intervals"]["pose"]["map50_95"]
        d = None if label in (first, "dense") else difference(result["accuracy"], results[first]["accuracy"])
        ratio, each = ratios(latency, f"{label}|openvino")
        net = load_yolo(work / label / "model.pt").model.float()
        estimate = table.network_ms(net, (640, 640), DEFAULT_FLOAT_CONVS) / dense_ms
        rows.append(f"| {result['target']} | {result['macs_kept']:.3f} | {estimate:.3f} | {pose:.3f} "
                    f"[{interval[0]:.3f}, {interval[1]:.3f}] | {d.describe() if d else '-'} | {latency[label + '|openvino']['p50_ms']:.2f} "
                    f"| {ratio:.2f} | {' '.join(f'{r:.2f}' for r in each)} |")
        out["rows"][label] = {**{k: v for k, v in result.items() if k != "accuracy"}, "estimate_kept": estimate, "pose_map50_95": pose,
                              "interval": interval, "minus_first": d.describe() if d else None, "p50_ms": latency[label + "|openvino"]["p50_ms"], "x_export": ratio, "rounds": each}
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{kind}-{args.tag}" if args.tag else kind
    head = (f"# Latency-aware channel allocation (yolo11n-pose, one shot, {kind})\n\nMachine: {env['cpu_model']} "
            f"({env['cpu_kind']}{capped}), 2 threads. Table: {table.identity}, anchored to the dense int8 model's per-conv times (OpenVINO's counters, "
            f"{dense_ms:.1f} ms of convs). Accuracy: coco-pose-val, OpenVINO f32, "
            f"640. Speed: posebench default int8, {args.rounds} interleaved rounds against Ultralytics' int8 export "
            "of the dense model.\n\n")
    (args.out / f"{name}.md").write_text(head + "\n".join(rows) + "\n")
    (args.out / f"{name}.json").write_text(json.dumps(out, indent=1, default=str))
    print(head + "\n".join(rows))


if __name__ == "__main__":
    main()
