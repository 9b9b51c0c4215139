"""BatchNorm after one-shot channel pruning, settled (issue 34): which statistics a pruned yolo11n-pose should keep.

For each MACs target the removals are found once (the sensitivity allocation on 8 coco-pose-recovery images, as
`posebench compress` with recipes/yolo-pose-channels-mXX-oneshot.yaml does), then applied to fresh copies of the
dense model in several ways, and every arm is judged on coco-pose-val through OpenVINO at 640x640, paired with
the arm `own` on the same images:

- `own`: the model's own statistics (what the shipped recipes do);
- `recalibrated`: every BatchNorm re-estimated on `--bn-images` coco-pose-recovery images (`recalibrate_bn_`);
- `expected`: the removed channels' mean contribution moved into their readers' BatchNorm mean, estimated
  without data from the producers' BatchNorm (`expected_shifts`; groups behind a depthwise conv skipped);
- `measured`: the same correction measured on `--fit-images` coco-pose-recovery images (`measured_shifts`: the
  readers' inputs as the dense network computes them, padding included);
- `scan-measured`: the measured correction inside the sensitivity scan too (each trial corrected before it is
  scored, `sensitivity_removals(correct=True)`), so the allocation chooses under the correction it gets;
- `dense` (once): the unpruned model, and `dense-recalibrated`: the unpruned model re-estimated (issue 34's -1 point).

    python benchmarks/bn_settle.py --macs 0.80 0.75 [--bn-images 256] [--fit-images 64] [--work DIR]

Resumable: each arm's result is kept in WORK/results.json as it is measured. Writes
benchmarks/results/bn-settle/bn_settle.{md,json}.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RECOVERY = SHARED / "coco-pose-recovery" / "coco-pose-recovery.yaml"
VAL = SHARED / "coco-pose-val" / "coco-pose-val.yaml"
ARMS = ("own", "recalibrated", "expected", "measured", "scan-measured")


def letterboxed(count: int, imgsz: int, skip: int = 0) -> Any:
    """A float batch (letterboxed, 0-1) of coco-pose-recovery train images `skip`..`skip + count`."""
    import numpy as np
    import torch

    from posebench.compress.images import calibration_frames
    from posebench.evaluate.preprocess import letterbox, to_batch

    frames = [image for k, image in enumerate(calibration_frames(RECOVERY, skip + count)) if k >= skip]
    return torch.from_numpy(np.concatenate([to_batch(letterbox(image, (imgsz, imgsz))[0]) for image in frames]))


def judge(net: Any, work: Path, label: str) -> dict[str, Any]:
    """pose / box accuracy of `net` on coco-pose-val through OpenVINO at 640, with intervals and matches."""
    from posebench import ArtifactStore, Predictor, create_backend, load_dataset, read_metadata, resolve_model, validate
    from posebench.models import default_model_path
    from posebench.ultralytics_adapter import load_yolo

    yolo = load_yolo(default_model_path())
    yolo.model = net
    pt = work / label / "model.pt"
    pt.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(pt))
    ir = ArtifactStore(resolve_model(pt), work / "cache").get("openvino", (640, 640))
    meta = read_metadata(ir)
    with create_backend("openvino", ir, threads=2, options={"inference_precision": "f32"}) as backend:
        predictor = Predictor(backend, (640, 640), tuple(meta["kpt_shape"]), end2end=bool(meta.get("end2end")))
        return validate(predictor, load_dataset(VAL, split="val"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macs", type=float, nargs="+", default=[0.80, 0.75])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--bn-images", type=int, default=256)
    parser.add_argument("--fit-images", type=int, default=64)
    parser.add_argument("--cliff", type=float, nargs=2, default=None, metavar=("HIGH", "LOW"),
                        help="after the arms: the LOW model with each group the allocation cut further than at HIGH "
                             "put back to its HIGH cut, one at a time (own statistics): which step makes the cliff")
    parser.add_argument("--scan-images", type=int, default=8, help="images the sensitivity scan scores on")
    parser.add_argument("--scan-limit", type=int, default=200,
                        help="spread over the first this many coco-pose-recovery images (compress: 200)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bn-settle")
    args = parser.parse_args()
    if not VAL.is_file() or not RECOVERY.is_file():
        raise SystemExit(f"needs {VAL} and {RECOVERY} (../shared/data)")

    from posebench.compress.channel_allocation import sensitivity_removals
    from posebench.compress.channel_groups import batchnorm_after, conv_macs, select_groups
    from posebench.compress.channel_shifts import measured_shifts
    from posebench.compress.channel_surgery import apply_removals_, fix_attributes
    from posebench.compress.channels import ChannelPlan
    from posebench.compress.images import calibration_frames, scan_images
    from posebench.compress.options import CompressOptions
    from posebench.compress.recovery import recalibrate_bn_
    from posebench.models import default_model_path
    from posebench.evaluate.compare import difference
    from posebench.ultralytics_adapter import load_yolo

    work = args.work or Path(tempfile.mkdtemp(prefix="bn-settle-"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / "results.json"
    results: dict[str, Any] = json.loads(store.read_text()) if store.is_file() else {}

    def keep(label: str, accuracy: dict[str, Any], **extra: Any) -> None:
        results[label] = {"accuracy": accuracy, **extra}
        store.write_text(json.dumps(results))
        print(f"{label}: pose mAP50-95 {accuracy['pose']['map50_95']:.4f}", flush=True)

    dense = load_yolo(default_model_path()).model.float().eval()
    for p in dense.parameters():
        p.requires_grad_(False)
    bn_frames = lambda: calibration_frames(RECOVERY, args.bn_images)
    if "dense" not in results:
        keep("dense", judge(copy.deepcopy(dense), work, "dense"))
    if "dense-recalibrated" not in results and "recalibrated" in args.arms:
        net = copy.deepcopy(dense)
        recalibrate_bn_(net, bn_frames(), imgsz=(640, 640))
        keep("dense-recalibrated", judge(net, work, "dense-recalibrated"))
    fit = letterboxed(args.fit_images, 640) if {"measured", "scan-measured"} & set(args.arms) else None
    # the sensitivity scan's images, by default as `posebench compress --data` picks them (8 over the first 200)
    scan = scan_images(RECOVERY, args.scan_images, limit=args.scan_limit)
    default_scan = (args.scan_images, args.scan_limit) == (8, CompressOptions().max_frames)
    suffix = "" if default_scan else f"-scan{args.scan_images}of{args.scan_limit}"
    def macs_at_640(net: Any) -> int:
        return conv_macs(net, (640, 640))

    for macs in args.macs:
        plan = ChannelPlan(macs=macs, allocation="sensitivity", criterion="magnitude", round_to=16)
        removals_file = work / f"m{round(macs * 100)}{suffix}-removed.pt"
        import torch

        if removals_file.is_file():
            removed = torch.load(removals_file)
        else:
            print(f"sensitivity scan for {macs:.0%} of the MACs", flush=True)
            removed, _ = sensitivity_removals(copy.deepcopy(dense), plan, scan, macs_at_640, kept=macs)
            torch.save(removed, removals_file)
        corrected_file = work / f"m{round(macs * 100)}{suffix}-removed-corrected.pt"
        if "scan-measured" in args.arms and not corrected_file.is_file():
            print(f"sensitivity scan with the measured correction for {macs:.0%} of the MACs", flush=True)
            torch.save(sensitivity_removals(copy.deepcopy(dense), plan, scan, macs_at_640, kept=macs, correct=True)[0],
                       corrected_file)
        for arm in args.arms:
            label = f"m{round(macs * 100)}-{arm}{suffix}"
            if label in results:
                continue
            net = copy.deepcopy(dense)
            groups = select_groups(net)
            if arm == "scan-measured":
                chosen = torch.load(corrected_file)
                apply_removals_(groups, chosen, batchnorm_after(net), measured_shifts(net, groups, chosen, fit))
            elif arm == "measured":
                shifts = measured_shifts(net, groups, removed, fit)
                apply_removals_(groups, removed, batchnorm_after(net), shifts)
            else:
                apply_removals_(groups, removed, batchnorm_after(net) if arm == "expected" else None)
            fix_attributes(net)
            if arm == "recalibrated":
                recalibrate_bn_(net, bn_frames(), imgsz=(640, 640))
            keep(label, judge(net, work, label), macs_kept=conv_macs(net, (640, 640)) / conv_macs(dense, (640, 640)))

    if args.cliff:
        high, low = (torch.load(work / f"m{round(m * 100)}-removed.pt") for m in args.cliff)
        tag = f"m{round(args.cliff[1] * 100)}"
        for name in [g for g in low if low[g].numel() > high.get(g, torch.zeros(0)).numel()]:
            label = f"{tag}-own-but-{name}"
            if label in results:
                continue
            net = copy.deepcopy(dense)
            groups = select_groups(net)
            apply_removals_(groups, {**low, name: high.get(name, torch.zeros(0, dtype=torch.long))})
            fix_attributes(net)
            keep(label, judge(net, work, label), macs_kept=conv_macs(net, (640, 640)) / conv_macs(dense, (640, 640)),
                 channels=[int(high.get(name, torch.zeros(0)).numel()), int(low[name].numel())])

    rows = ["| arm | conv MACs kept | pose mAP50-95 [95 %] | minus `own` (points, paired) |", "|---|---|---|---|"]
    for label, found in results.items():
        acc = found["accuracy"]
        ci = acc["intervals"]["pose"]["map50_95"]
        own = results.get(label.split("-")[0] + "-own") if label.startswith("m") else results.get("dense")
        d = difference(acc, own["accuracy"]) if own and own is not found else None
        rows.append(f"| {label} | {found.get('macs_kept', 1.0):.3f} | {acc['pose']['map50_95']:.3f} "
                    f"[{ci[0]:.3f}, {ci[1]:.3f}] | {d.describe() if d else '-'} |")
    from posebench import fingerprint

    env = fingerprint()
    text = (f"# BatchNorm after one-shot channel pruning (yolo11n-pose, coco-pose-val, OpenVINO f32, 640)\n\n"
            f"Machine: {env['cpu_model']} ({env['cpu_kind']}). Re-estimation: {args.bn_images} coco-pose-recovery "
            f"images; measured correction: {args.fit_images}. Dense rows are paired with `dense`.\n\n"
            + "\n".join(rows) + "\n")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bn_settle.md").write_text(text)
    (args.out / "bn_settle.json").write_text(json.dumps(
        {label: {"pose_map50_95": r["accuracy"]["pose"]["map50_95"],
                 "interval": r["accuracy"]["intervals"]["pose"]["map50_95"], "macs_kept": r.get("macs_kept", 1.0)}
         for label, r in results.items()} | {"environment": env}, indent=2))


if __name__ == "__main__":
    main()
