"""Issue 28's curve: conv MACs kept x recovery arm x epochs -> pose mAP50-95 on coco-pose-val, fp32 and int8, and
model-mode p50 against Ultralytics' int8 export measured in the same interleaved rounds.

    posebench study studies/oneshot-curve.yaml --out runs/oneshot-curve --metric map50_95
    python benchmarks/recovery_curve.py runs/oneshot-curve/results.jsonl \
        --arm "m80 task+distill lr 0.002|0.796|task+distill|1|m80-e1.json" ... --out benchmarks/results/recovery-curve

The study gives the one-shot arms (and the dense and peer rows with their latency); `--arm LABEL|MACS|ARM|EPOCHS|JSON`
adds a trained checkpoint scored by `posebench val --json` on the same judging set. Writes recovery-curve.md,
recovery-curve.json and recovery-curve.png into --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from posebench import merge

PEER = "ultralytics-int8"


def _accuracy(a: Mapping[str, Any]) -> dict[str, Any]:
    return {"map50_95": a["pose"]["map50_95"], "ci": (a.get("intervals") or {}).get("pose", {}).get("map50_95")}


def study_rows(store: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per study variant: accuracy on the judging set, conv work kept and p50 against the peer per round."""
    records = merge([store])
    accuracy = {r.identity.variant: _accuracy(r.accuracy) for r in records if r.kind == "accuracy" and r.ok}
    rounds: dict[str, dict[int, float]] = defaultdict(dict)
    ops: dict[str, float] = {}
    for r in records:
        if r.kind == "latency" and r.ok:
            variant = r.identity.variant
            rounds[variant][r.round or 1] = r.latency["p50_ms"]
            work = (r.artifact or {}).get("ops") or {}
            ops[variant] = float(work.get("float_ops", 0)) + float(work.get("int8_ops", 0))
    peer = rounds.get(PEER, {})
    rows = []
    for variant, acc in accuracy.items():
        ratios = [peer[k] / v for k, v in rounds.get(variant, {}).items() if k in peer and v]
        pruned = variant.startswith("m")  # the dense rows (base, int8, the peer's export) keep every MAC
        rows.append({"label": variant, "macs_kept": ops.get(variant, 0) / ops["base"] if pruned and ops.get("base") else 1.0,
                     "arm": "none (one shot)" if variant.startswith("m") else "dense", "epochs": 0,
                     "precision": "int8" if variant.endswith("int8") else "fp32", **acc,
                     "p50_ms": statistics.median(rounds[variant].values()) if rounds.get(variant) else None,
                     "x_peer": statistics.median(ratios) if ratios else None})
    return rows, {"rounds": max((len(v) for v in rounds.values()), default=0)}


def arm_row(spec: str) -> dict[str, Any]:
    label, macs, arm, epochs, path = spec.split("|")
    [record] = [r for r in json.loads(Path(path).read_text()) if r.get("kind") == "accuracy"][:1]
    return {"label": label, "macs_kept": float(macs), "arm": arm, "epochs": int(epochs),
            "precision": record["trial"].get("precision", "fp32"), **_accuracy(record["accuracy"]), "p50_ms": None, "x_peer": None}


def trends(rows: list[dict[str, Any]], goal: float) -> list[str]:
    """A least-squares line through every trained arm with three or more epochs: points per epoch, and the epochs
    it would need to reach `goal` if it kept that pace (a trend, not a promise)."""
    import numpy as np

    arms: dict[tuple[float, str], list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["epochs"] and r["precision"] == "fp32":
            arms[(r["macs_kept"], r["arm"])].append((r["epochs"], r["map50_95"]))
    lines = []
    for (macs, arm), points in arms.items():
        if len(points) < 3:
            continue
        x, y = np.array(points, dtype=float).T
        slope, intercept = np.polyfit(x, y, 1)
        need = (goal - intercept) / slope if slope > 0 else float("inf")
        lines.append(f"{arm} at {macs:.1%} of the MACs: {slope * 100:+.2f} points per epoch over epochs "
                     f"{int(x.min())}-{int(x.max())}; at that pace {goal:.3f} comes at epoch {need:.0f}"
                     if need != float("inf") else f"{arm} at {macs:.1%}: no upward trend")
    return lines


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    def ci(r: dict[str, Any]) -> str:
        return f" [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if r.get("ci") else ""

    lines = ["| model | conv MACs kept | recovery | epochs | precision | pose mAP50-95 (coco-pose-val) | "
             f"x Ultralytics' int8 ({meta['rounds']} rounds) |", "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (-(r["macs_kept"] or 0), r["arm"], r["epochs"], r["precision"])):
        lines.append(f"| {r['label']} | {r['macs_kept']:.1%} | {r['arm']} | {r['epochs']} | {r['precision']} | "
                     f"{r['map50_95']:.3f}{ci(r)} | " + (f"{r['x_peer']:.2f}" if r.get("x_peer") else "-") + " |")
    fits = trends(rows, goal=0.494)
    return "\n".join(lines) + "\n" + ("\nTrend: " + "; ".join(fits) + ".\n" if fits else "")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for precision, marker in (("fp32", "o"), ("int8", "s")):
        one = sorted((r for r in rows if r["arm"] == "none (one shot)" and r["precision"] == precision),
                     key=lambda r: r["macs_kept"])
        if one:
            ax.plot([r["macs_kept"] for r in one], [r["map50_95"] for r in one], marker=marker,
                    label=f"one shot, {precision}")
    for r in rows:
        if r["arm"] not in ("none (one shot)", "dense"):
            ax.scatter([r["macs_kept"]], [r["map50_95"]], marker="x", color="crimson")
            ax.annotate(f"{r['arm']} e{r['epochs']}", (r["macs_kept"], r["map50_95"]), fontsize=7,
                        textcoords="offset points", xytext=(4, -8))
    for r in rows:
        if r["label"] in ("base", PEER):
            ax.axhline(r["map50_95"], ls="--", lw=0.8, color="grey" if r["label"] == "base" else "black",
                       label="dense fp32" if r["label"] == "base" else "Ultralytics int8 export (dense)")
    ax.set_xlabel("conv MACs kept (640x640)")
    ax.set_ylabel("pose mAP50-95, coco-pose-val")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="results.jsonl of studies/oneshot-curve.yaml")
    parser.add_argument("--arm", action="append", default=[], metavar="LABEL|MACS|ARM|EPOCHS|JSON")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/recovery-curve"))
    args = parser.parse_args()
    rows, meta = study_rows(args.store)
    rows += [arm_row(spec) for spec in args.arm]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recovery-curve.json").write_text(json.dumps({"rows": rows, **meta}, indent=1))
    (args.out / "recovery-curve.md").write_text(markdown(rows, meta))
    plot(rows, args.out / "recovery-curve.png")
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
