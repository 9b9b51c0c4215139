"""`posebench models`: the compressed models shipped in models/, from their cards: cost, accuracy, and speed per
CPU kind measured (and whether this machine's kind is among them)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `models` and its flags to the subcommands."""
    models = sub.add_parser("models", help="list the shipped compressed models (MACs, accuracy, speed per CPU kind)",
                            description="The models shipped in models/ (usable as --model NAME), read from their "
                                        "cards: conv MACs and parameters kept, pose mAP50-95 on coco-pose-val with "
                                        "its 95 % interval, and the speed against Ultralytics' int8 export on each "
                                        "CPU kind measured.")
    models.add_argument("name", nargs="?", default=None, help="one model's whole card (default: all, one line each)")
    models.add_argument("--json", type=Path, metavar="PATH", help="also write the cards here")


def accuracy_words(entry: dict[str, Any] | None) -> str:
    """'0.494 [0.474, 0.516]' from a card's accuracy entry ('-' when absent)."""
    if not entry:
        return "-"
    ci = entry.get("pose_map50_95_95ci")
    return f"{entry['pose_map50_95']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def speed_words(row: dict[str, Any]) -> str:
    """'amx: posebench int8 (...) 1.07x; fp32 (openvino, bf16) 1.28x' ('avx2 (capped on avx512_vnni_bf16): ...')."""
    capped = f" (capped on {row['capped_on']})" if row.get("capped_on") else ""
    return f"{row['kind']}{capped}: " + "; ".join(f"{k} {v:.2f}x" for k, v in row["x_ultralytics_int8"].items())


def summary_lines(card: dict[str, Any], here: str) -> list[str]:
    """A card in a few lines: what it costs, how accurate, how fast on each kind, and whether `here` is measured."""
    acc = card.get("accuracy") or {}
    lines = [f"{card['name']}: {card['macs_kept']:.1%} of the conv MACs at 640, {card['parameters']:,} parameters; "
             f"pose mAP50-95 on coco-pose-val fp32 {accuracy_words(acc.get('fp32'))}, int8 "
             f"{accuracy_words(acc.get('int8'))}"]
    rows = card["speed"]
    lines += [f"  x Ultralytics' int8 export, {speed_words(r)}" for r in rows]
    if not any(r["kind"] == here and not r.get("capped_on") for r in rows):
        lines.append(f"  this machine ({here}): not measured; `python benchmarks/card_speed.py --model {card['name']}` "
                     "adds its row")
    return lines


def run(args: argparse.Namespace) -> int:
    """Run `posebench models`; returns the exit status."""
    import yaml

    from posebench.machine.cpu import cpu_flags
    from posebench.machine.isa import CPU_KINDS, cpu_kind
    from posebench.models import read_card, shipped_models, shipped_models_dir

    here = cpu_kind(cpu_flags())
    if args.name is not None:
        cards = [read_card(args.name)]
        print(yaml.safe_dump(cards[0], sort_keys=False, width=110).rstrip())
    else:
        cards = [read_card(name) for name in shipped_models()]
        if not cards:
            print(f"no shipped models in {shipped_models_dir()}")
        for card in cards:
            print("\n".join(summary_lines(card, here)))
        print(f"\nThis machine's kind: {here} ({CPU_KINDS[here]}). Use one with --model NAME; "
              "`posebench models NAME` prints its whole card.")
    if args.json:
        from posebench.results import write_json

        write_json(args.json, cards)
    return 0
