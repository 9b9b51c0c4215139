"""Label-free recovery of a channel-pruned yolo11n-pose: pseudo-label fine-tuning vs distillation, same data, same
epochs. Data discipline: training sees street-video frames 0-149 only (labelled by the dense model for the
pseudo-label runs); judged on coco-pose-mini val+train2017 through OpenVINO fp32 at 640.

    python benchmarks/distill_recovery.py [--macs 0.65] [--epochs 3] [--imgsz 640]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from channel_pruning import SHARED, _pose_map, labelled_copy

from posebench import Recipe
from posebench import CompressOptions
from posebench.compress.run import compress
from posebench import fingerprint
from posebench import ArtifactStore
from posebench import resolve_model

ARMS = {  # name -> distillation block ("" = none)
    "pseudo-labels": "",
    "distill": "distillation:\n  task: 0\n",
    "pseudo-labels+distill": "distillation:\n  task: 1\n",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macs", type=float, default=0.65)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="posebench-distill-"))
    both = labelled_copy(work)
    rows = []
    for arm, block in ARMS.items():
        text = (f"name: {arm}\nmodifiers:\n  - type: channel_pruning\n    macs: {args.macs}\n"
                f"finetune:\n  epochs: {args.epochs}\n  imgsz: {args.imgsz}\n  batch: 8\n  lr0: 0.01\n" + block)
        out = work / arm
        start = time.time()
        summary = compress(resolve_model("default"), Recipe.from_yaml(text), out, on_progress=print,
                           options=CompressOptions(pseudo_labels=SHARED / "street-video" / "street.avi",
                                                   max_frames=150, cache_dir=work / "cache"))
        seconds = time.time() - start
        xml = ArtifactStore(resolve_model(summary["checkpoint"]), work / "cache").get("openvino", (640, 640))
        rows.append({"arm": arm, "macs_kept": summary["channel_pruning"]["macs_kept"], "epochs": args.epochs,
                     "compress_s": seconds, "pose_map50_95": _pose_map(xml, both, 640)})
        print(rows[-1], flush=True)
    env = fingerprint()
    lines = [f"# Label-free recovery of channel-pruned yolo11n-pose ({env['cpu_model']}, {env['int8_path']})", "",
             f"Channel pruning to {args.macs:.0%} of the conv MACs (magnitude), then {args.epochs} epochs at "
             f"{args.imgsz} on street-video frames 0-149 (pseudo-labels by the dense model; distillation from it). "
             "pose mAP50-95 on coco-pose-mini val+train2017 through OpenVINO fp32 at 640 (dense model: 0.5894).", "",
             "| recovery | MACs kept | epochs | pose mAP50-95 | compress s |", "|---|---|---|---|---|"]
    lines += [f"| {r['arm']} | {r['macs_kept']:.2f} | {r['epochs']} | {r['pose_map50_95']:.4f} | {r['compress_s']:.0f} |"
              for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"distill_recovery-{env['int8_path']}.md").write_text(text)
    (args.out / f"distill_recovery-{env['int8_path']}.json").write_text(json.dumps({"rows": rows, "environment": env},
                                                                                   indent=2))


if __name__ == "__main__":
    main()
