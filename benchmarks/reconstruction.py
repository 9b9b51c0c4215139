"""Does reconstruction pay at 75 % of the MACs, and does distillation after it still collapse? (issue 34, item 2)

Every arm goes through `posebench compress` (the product path) on coco-pose-recovery and is judged on coco-pose-val
through OpenVINO f32 at 640 (95 % intervals, differences paired with the one-shot arm on the same images):

- `oneshot`: `recipes/yolo-pose-channels-m75-oneshot.yaml` (sensitivity allocation, own BatchNorm statistics);
- `reconstruct`: the same recipe with `reconstruct: true` (least-squares re-fit of every conv that lost inputs to
  the dense model's output, `--fit-images` recovery images at 640);
- `reconstruct+distill`: the reconstructed model distilled from the dense model with the gentle recipe (output +
  neck features, BatchNorm frozen, no mosaic, lr 3e-4 -> 3e-5, `--epochs`), as `yolo-pose-channels-m75-ap.yaml`
  recovers its pruned model;
- `reconstruct-scores`: the reconstruction with the head branches' output positions weighted by the dense model's
  person score there (`reconstruct_weighting: scores`);
- `oneshot+distill`, `reconstruct-scores+distill`: the same distillation from those models.

Besides AP, each model's raw head outputs are compared with the dense model's on 32 held-out recovery images (the
distillation output terms: class, box, keypoints): where the fit's lower per-conv error goes.

    python benchmarks/reconstruction.py [--fit-images 200] [--epochs 2] [--arms oneshot reconstruct ...] [--work DIR]

Resumable (WORK/results.json, one entry per arm). Writes benchmarks/results/reconstruction/<kind>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bn_settle import RECOVERY, ROOT, judge, letterboxed

from posebench import fingerprint
from posebench.evaluate.compare import difference

ARMS = ("oneshot", "reconstruct", "reconstruct-scores", "oneshot+distill", "reconstruct+distill",
        "reconstruct-scores+distill")
GENTLE = ("name: gentle-distillation\ndescription: distillation from the dense model, BatchNorm frozen\n"
          "bn_recalibration:\n  before_finetune: false\n"
          "finetune:\n  epochs: {epochs}\n  lr0: 0.0003\n  lrf: 0.1\n  batch: 16\n  imgsz: 640\n"
          "  batchnorm: frozen\n  mosaic: 0.0\n"
          "distillation:\n  output: 1.0\n  feature: 1.0\n  task: 0.0\n")


def compress_arm(work: Path, label: str, recipe_text: str, source: Path, teacher: Path | None) -> dict[str, Any]:
    """Run `posebench compress` on `source` with the recipe; the compression summary."""
    from posebench import CompressOptions, Recipe
    from posebench.compress.run import compress

    out = work / label
    out.mkdir(parents=True, exist_ok=True)
    recipe_path = out / "recipe.yaml"
    recipe_path.write_text(recipe_text)
    from posebench import resolve_model

    return compress(resolve_model(source), Recipe.load(recipe_path), out,
                    options=CompressOptions(data=RECOVERY, teacher=teacher), on_progress=print)


def head_terms(model_pt: Path, dense_pt: Path, images: Any) -> dict[str, float]:
    """The distillation output terms of the model's raw head outputs against the dense model's on `images`."""
    from posebench.compress.distill import output_terms
    from posebench.compress.scan_damage import head_outputs
    from posebench.ultralytics_adapter import load_yolo

    dense = load_yolo(dense_pt).model.float().eval()
    net = load_yolo(model_pt).model.float().eval()
    head = net.model[-1]
    reference = head_outputs(dense, images)
    kwargs = {"reg_max": int(getattr(head, "reg_max", 16)), "ndim": int(head.kpt_shape[1])}
    floor = output_terms(reference, reference, **kwargs)
    got = output_terms(head_outputs(net, images), reference, **kwargs)
    return {name: float(got[name] - floor[name]) for name in got}


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    base = results["oneshot"]["accuracy"]
    lines = ["# Reconstruction at 75 % of the MACs, and distillation after it (issue 34)", "",
             (f"Machine: {meta['cpu']} (`cpu_kind` {meta['kind']}), 2 cores. Every arm made by `posebench compress` on "
             "coco-pose-recovery; judge: coco-pose-val (750 held-out images), pose mAP50-95 through OpenVINO f32 at "
             "640, 95 % bootstrap intervals, differences paired with the one-shot model. Head terms: the "
             "distillation output terms (class BCE, box DFL, keypoints) against the dense model on 32 held-out "
             "coco-pose-recovery images (0 = the dense outputs)."), "",
             "| arm | pose mAP50-95 | minus one shot (paired) | class | box | keypoints | minutes |",
             "|---|---|---|---|---|---|---|"]
    for label, row in results.items():
        acc = row["accuracy"]
        pose = acc["pose"]
        low, high = acc["intervals"]["pose"]["map50_95"]
        diff = "" if label == "oneshot" else difference(acc, base).describe()
        terms = row.get("head_terms", {})
        lines.append(f"| {label} | {pose['map50_95']:.3f} [{low:.3f}, {high:.3f}] | {diff} | "
                     + " | ".join(f"{terms.get(k, float('nan')):.4f}" for k in ("kd_cls", "kd_box", "kd_kpt"))
                     + f" | {row.get('seconds', 0) / 60:.0f} |")
    for arm in ("reconstruct", "reconstruct-scores"):
        lines += _fit_lines(arm, results.get(arm, {}).get("fit"))
    return "\n".join(lines) + "\n"


def _fit_lines(arm: str, fit: dict[str, Any] | None) -> list[str]:
    """The per-conv errors of one reconstruction."""
    lines: list[str] = []
    if fit:
        lines += ["", (f"`{arm}`: {fit['convs']} convs on {fit['images']} images in {fit['seconds'] / 60:.1f} "
                  f"minutes; mean relative output error per conv {fit['mean_error_before']:.2f} -> "
                  f"{fit['mean_error_after']:.2f}."), "", "| conv | error before | after |", "|---|---|---|"]
        lines += [f"| `{c['conv']}` | {c['error_before']:.3f} | {c['error_after']:.3f} |" for c in fit["per_conv"]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--arms", nargs="+", default=["oneshot", "reconstruct", "reconstruct+distill",
                                                      "reconstruct-scores"], choices=ARMS, help="in this order")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "reconstruction")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reconstruction")
    args = parser.parse_args()
    import time

    from posebench.models import default_model_path

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    store = work / "results.json"
    results: dict[str, Any] = json.loads(store.read_text()) if store.is_file() else {}
    dense = default_model_path()
    oneshot = (ROOT / "recipes" / "yolo-pose-channels-m75-oneshot.yaml").read_text()
    fitted = oneshot.rstrip() + f"\n    reconstruct: true\n    reconstruct_images: {args.fit_images}\n"
    gentle = GENTLE.format(epochs=args.epochs)
    made = {"oneshot": (oneshot, dense, None), "reconstruct": (fitted, dense, None),
            "reconstruct-scores": (fitted + "    reconstruct_weighting: scores\n", dense, None)}
    made.update({f"{arm}+distill": (gentle, work / arm / "model.pt", dense) for arm in list(made)})
    held_out = letterboxed(32, 640, skip=1300)
    for label in args.arms:
        recipe, source, teacher = made[label]
        if label in results:
            continue
        start = time.perf_counter()
        summary = compress_arm(work, label, recipe, source, teacher)
        seconds = time.perf_counter() - start
        from posebench.ultralytics_adapter import load_yolo

        model_pt = work / label / "model.pt"
        row = {"seconds": seconds, "head_terms": head_terms(model_pt, dense, held_out),
               "accuracy": judge(load_yolo(model_pt).model.float().eval(), work / "judged", label)}
        fit = (summary.get("channel_pruning") or {}).get("reconstruction")
        if fit:
            row["fit"] = fit
        results[label] = row
        store.write_text(json.dumps(results, indent=1, default=str))
        print(label, row["accuracy"]["pose"]["map50_95"], row["head_terms"], flush=True)
    env = fingerprint()
    meta = {"cpu": env["cpu_model"], "kind": env["cpu_kind"]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{meta['kind']}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1,
                                                              default=str))
    (args.out / f"{meta['kind']}.md").write_text(markdown(results, meta))


if __name__ == "__main__":
    main()
