"""Re-measure shipped models' speed on the machine at hand and add its row (its CPU kind) to their cards.

Side by side in one run, 640x640, batch 1, model mode, 2 threads, `--rounds` interleaved rounds in fresh processes:
Ultralytics' `yolo export format=openvino int8=True` of the dense yolo11n-pose (the reference), and for each shipped
model its posebench int8 (the default preset, recipes/int8-ptq.yaml) and its fp32 with float in bf16 where the CPU
computes in bf16 (f32 elsewhere). With `--dense`, the dense model's rows too (fp32 in f32 and bf16, posebench int8
and int8-coarse): the README's "What it found" speed column for this kind. Everything int8 is calibrated on the
same 128 coco-pose-recovery images. A card's ratio is the median of the per-round ratios (reference p50 / p50).

    python benchmarks/card_speed.py --model yolo11n-pose-m80 --model yolo11n-pose-m90 --dense --write-cards

Writes benchmarks/results/card_speed-<kind>.{md,json}; with --write-cards, replaces this kind's row in each card
and rewrites models/README.md. Run it on a quiet machine: nothing else running.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml
from side_by_side import interleaved_latency, ultralytics_openvino_int8

from posebench import CompressOptions, Recipe, fingerprint, resolve_model
from posebench.compress.images import calibration_dataset
from posebench.compress.run import compress
from posebench.export import ArtifactStore
from posebench.machine.cpu import bf16_arithmetic
from posebench.machine.isa import CPU_KINDS, cpu_kind

ROOT = Path(__file__).resolve().parents[1]
RECOVERY = ROOT.parent / "shared" / "data" / "coco-pose-recovery"
REFERENCE = "ultralytics-int8"
PROTOCOL = ("model-mode p50 at 640x640, batch 1, {rounds} interleaved rounds, median of the per-round ratios; "
            "reference: Ultralytics' OpenVINO int8 export of the dense yolo11n-pose (calibrated on 128 "
            "coco-pose-recovery "
            "images, as posebench's int8) run as Ultralytics runs it (float parts {float})")


def recovery_images(count: int) -> Any:
    """(name, image) of the first `count` coco-pose-recovery images, sorted by path."""
    import cv2

    if not RECOVERY.is_dir():
        raise SystemExit(f"{RECOVERY} not found: this benchmark calibrates on coco-pose-recovery (../shared/data)")
    for path in sorted(RECOVERY.glob("images/*/*.jpg"))[:count]:
        yield path.name, cv2.imread(str(path))


def int8_ir(model: str, recipe: Path, out: Path, calibration: Path, cache: Path) -> Path:
    """posebench's int8 bundle of `model` with `recipe` (built once into `out`); its OpenVINO IR."""
    if not (out / "bundle.json").is_file():
        print(f"building {out.name}", flush=True)
        compress(resolve_model(model), Recipe.load(recipe), out,
                 options=CompressOptions(calibration=calibration, cache_dir=cache))
    return out / json.loads((out / "bundle.json").read_text())["artifacts"]["openvino"]


def ratios(latency: dict[str, dict[str, Any]], key: str) -> tuple[float, list[float]]:
    """(median of the per-round ratios reference p50 / p50, those ratios)."""
    reference = [r["p50_ms"] for r in latency[f"{REFERENCE}|openvino"]["rounds"]]
    mine = [r["p50_ms"] for r in latency[key]["rounds"]]
    each = [a / b for a, b in zip(reference, mine)]
    return statistics.median(each), each


def capped_words(env: dict[str, Any]) -> tuple[str | None, str]:
    """(the CPU's own kind, words saying so) when OpenVINO's kernels were capped (ONEDNN_MAX_CPU_ISA); (None, "")."""
    if not env.get("onednn_max_cpu_isa"):
        return None, ""
    native = cpu_kind(env["native_isa"])
    return native, (f"; OpenVINO's kernels capped at {env['onednn_max_cpu_isa']} (ONEDNN_MAX_CPU_ISA) on a {native} "
                    "CPU: speed indicative of the kind")


def write_card_row(name: str, row: dict[str, Any]) -> None:
    """Replace (or add) the row of `row['kind']` (measured natively, or capped on another kind) in
    models/NAME/card.yaml."""
    from posebench.models import read_card, shipped_models

    card_path = shipped_models()[name] / "card.yaml"
    card = yaml.safe_load(card_path.read_text())
    same = lambda r: (r["kind"], r.get("capped_on")) == (row["kind"], row.get("capped_on"))
    rows = [r for r in read_card(name)["speed"] if not same(r)] + [row]
    card["speed"] = rows
    card_path.write_text(yaml.safe_dump(card, sort_keys=False, width=110))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="a shipped model's name (repeat)")
    parser.add_argument("--dense", action="store_true", help="the dense model's rows too")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per trial and round")
    parser.add_argument("--work", type=Path, default=None, help="build folder, kept for a re-run (default: temp)")
    parser.add_argument("--write-cards", action="store_true", help="put this kind's row into each card")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if not args.model and not args.dense:
        parser.error("give --model NAME (repeatable) and/or --dense")

    env = fingerprint()
    kind = env["cpu_kind"]
    bf16 = bf16_arithmetic(env["isa"])
    fp = "bf16" if bf16 else "f32"
    work = args.work or Path(tempfile.mkdtemp(prefix="card-speed-"))
    cache = work / "cache"
    calib_yaml = work / "calibration" / "calibration.yaml"
    if not calib_yaml.is_file():
        calibration_dataset(recovery_images(128), work / "calibration", (17, 3))
    calibration = work / "calibration" / "images"
    made = sorted((work / "ultralytics").glob("*_openvino_model/*.xml"))  # built once, uncapped, and kept
    reference = made[0] if made else ultralytics_openvino_int8(work, calib_yaml)
    timed: dict[str, dict[str, Path]] = {REFERENCE: {"openvino": reference}}
    labels: dict[str, tuple[str, str]] = {}  # timed key -> (model, the card's words for it)
    for name in (["default"] if args.dense else []) + args.model:
        tag = "dense" if name == "default" else name
        fp32 = ArtifactStore(resolve_model(name), cache).get("openvino", (640, 640))
        timed[f"{tag}-fp32-{fp}"] = {f"openvino[inference_precision={fp}]": fp32}
        labels[f"{tag}-fp32-{fp}|openvino[inference_precision={fp}]"] = (tag, f"fp32 (openvino, {fp})")
        timed[f"{tag}-int8"] = {"openvino": int8_ir(name, ROOT / "recipes" / "int8-ptq.yaml", work / f"{tag}-int8",
                                                    calibration, cache)}
        labels[f"{tag}-int8|openvino"] = (tag, f"posebench int8 (openvino, float parts {fp})")
        if name == "default":
            if bf16:  # fp32 in f32 too: what a CPU without bf16 runs
                timed["dense-fp32-f32"] = {"openvino[inference_precision=f32]": fp32}
                labels["dense-fp32-f32|openvino[inference_precision=f32]"] = (tag, "fp32 (openvino, f32)")
            timed["dense-int8-coarse"] = {"openvino": int8_ir(name, ROOT / "recipes" / "int8-ptq-float-coarse.yaml",
                                                              work / "dense-int8-coarse", calibration, cache)}
            labels["dense-int8-coarse|openvino"] = (tag, f"posebench int8-coarse (openvino, float parts {fp})")
    latency = interleaved_latency(timed, rounds=args.rounds, seconds=args.seconds, imgsz=(640, 640))
    native, capped = capped_words(env)
    machine = f"{env['cpu_model']} ({CPU_KINDS[kind]}; {env.get('microarchitecture', '?')}{capped}), 2 threads"
    protocol = PROTOCOL.format(rounds=args.rounds, float=fp)
    table = [f"# Speed against Ultralytics' int8 export, {kind}", "", f"Machine: {machine}.", "",
             f"Protocol: {protocol}.", "",
             "| model | deployment | p50 ms | x Ultralytics' int8 export | per round |", "|---|---|---|---|---|",
             f"| dense | Ultralytics int8 export (openvino) | {latency[REFERENCE + '|openvino']['p50_ms']:.2f} "
             "| 1.00 | - |"]
    found: dict[str, dict[str, float]] = {}
    for key, (tag, words) in labels.items():
        x, each = ratios(latency, key)
        found.setdefault(tag, {})[words] = round(x, 3)
        rounds = ", ".join(f"{e:.2f}" for e in each)
        table.append(f"| {tag} | {words} | {latency[key]['p50_ms']:.2f} | {x:.2f} | {rounds} |")
    text = "\n".join(table) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"card_speed-{kind}" + (f"-capped-on-{native}" if native else "")
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps(
        {"kind": kind, "machine": machine, "protocol": protocol, "ratios": found, "latency": latency,
         "environment": env}, indent=2, default=str))
    if args.write_cards:
        import datetime

        from ship_model import write_index

        for name in args.model:
            write_card_row(name, {"kind": kind, **({"capped_on": native} if native else {}), "machine": machine,
                                  "threads": 2, "protocol": protocol,
                                  "x_ultralytics_int8": found[name],
                                  "measured": f"{datetime.date.today()}, benchmarks/card_speed.py"})
        write_index(ROOT / "models")


if __name__ == "__main__":
    main()
