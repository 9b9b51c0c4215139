"""DeepSparse int8 and sparse-int8 against fp32, in the form DeepSparse accelerates (issue 15).

1. Builds (or resumes) `studies/deepsparse-int8.yaml`: yolo11n-pose at 640, dense / 50 / 70 / 80 / 90 % one-shot
   unstructured sparsity and 50 / 70 / 90 % in blocks of 4 input channels (`b4-*`, SparseML's block4; BatchNorm
   re-calibrated on street frames), fp32 and int8 PTQ; the study also times and
   scores every variant and writes its report (`posebench report --thesis` on its results puts Table 4.2 beside).
2. Times, side by side with every backend loaded once (a DeepSparse compile takes seconds; the study reloads per
   round), in interleaved rounds: DeepSparse on every variant (an int8 bundle's `deepsparse` artifact, the
   ConvInteger form) and on the dense int8 bundle's QDQ ONNX (the form posebench handed it before), OpenVINO on
   dense fp32 and dense int8. Ratios are taken within each round, median over rounds, against DeepSparse fp32
   dense and OpenVINO int8 dense. On a CPU without VNNI, also DeepSparse's fast (inexact) VNNI emulation
   (NM_FAST_VNNI_EMULATION=1, the `fast_vnni_emulation` option of the deepsparse runtime) on three int8 rows.
3. Asks DeepSparse what it compiles of each model (`posebench.runtimes.deepsparse.engine_coverage`).
4. Scores pose mAP50-95 on coco-pose-mini val+train2017 (42 images) through DeepSparse (and OpenVINO for its rows).
Writes benchmarks/results/deepsparse_int8-<this machine's int8 path>.{json,md}. Needs ../shared/data.

Run: .venv/bin/python benchmarks/deepsparse_int8.py [--out runs/deepsparse-int8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data"
STUDY = REPO / "studies" / "deepsparse-int8.yaml"
VARIANTS = ("base", "int8", "p50", "p50-int8", "p70", "p70-int8", "p80", "p80-int8", "p90", "p90-int8",
            "b4-p50-int8", "b4-p70-int8", "b4-p90", "b4-p90-int8")
IMGSZ = (640, 640)


def artifacts(out: Path) -> dict[tuple[str, str], Path]:
    """(label, runtime) -> the file that runtime runs, as the study resolved it (its latency records)."""
    from posebench import ResultStore

    found: dict[tuple[str, str], Path] = {}
    for r in ResultStore(out / "results.jsonl").read():
        if r.kind == "latency" and r.ok and r.identity.threads == 2:
            found[(r.identity.variant, r.identity.runtime)] = Path(r.artifact["path"])
    qdq = found[("int8", "deepsparse")].with_name("model-int8.onnx")
    models = {(v, "deepsparse"): found[(v, "deepsparse")] for v in VARIANTS}
    models[("int8 (QDQ ONNX)", "deepsparse")] = qdq
    from posebench.machine.isa import this_machine

    for variant in ("int8", "p50-int8", "p90-int8") if "vnni" not in this_machine() and this_machine() != "amx" else ():
        models[(f"{variant} (fast VNNI emulation)", "deepsparse")] = found[(variant, "deepsparse")]
    models[("base", "openvino")] = found[("base", "openvino")]
    models[("int8", "openvino")] = found[("int8", "openvino")]
    return models


def options(key: tuple[str, str]) -> dict[str, bool]:
    return {"fast_vnni_emulation": True} if "fast VNNI" in key[0] else {}


def time_rounds(models: dict[tuple[str, str], Path], threads: int, rounds: int) -> dict[tuple[str, str], list[float]]:
    """p50 ms of every model in `rounds` interleaved rounds, each backend loaded once."""
    import numpy as np

    from posebench import LatencyProtocol
    from posebench import create_backend

    protocol = LatencyProtocol(iters=60, min_seconds=2, warmup_iters=10, warmup_seconds=1)
    batch = np.random.default_rng(0).random((1, 3, *IMGSZ), dtype=np.float32)
    backends = {key: create_backend(key[1], path, threads=threads, options=options(key)) for key, path in models.items()}
    out: dict[tuple[str, str], list[float]] = {key: [] for key in models}
    try:
        for n in range(rounds):
            for key, backend in backends.items():
                out[key].append(backend.measure(batch, protocol).p50_ms)
                print(f"threads {threads} round {n + 1}/{rounds}: {key[0]} on {key[1]} {out[key][-1]:.1f} ms", flush=True)
    finally:
        for backend in backends.values():
            backend.close()
    return out


def score(models: dict[tuple[str, str], Path], data: Path) -> dict[tuple[str, str], float]:
    """Pose mAP50-95 of every model through its runtime (2 threads)."""
    from posebench import load_dataset
    from posebench import NMSConfig
    from posebench import Predictor, validate
    from posebench import read_metadata
    from posebench import create_backend

    dataset = load_dataset(data, split="val")
    scores = {}
    for key, path in models.items():
        with create_backend(key[1], path, threads=2, options=options(key)) as backend:
            result = validate(Predictor(backend, IMGSZ, tuple(read_metadata(path)["kpt_shape"]), NMSConfig()), dataset)
        scores[key] = result["pose"]["map50_95"]
        print(f"{key[0]} on {key[1]}: pose mAP50-95 {scores[key]:.4f} on {result['images']} images", flush=True)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "deepsparse-int8")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "posebench", "study", str(STUDY), "--out", str(args.out)], check=True)

    from posebench import fingerprint
    from posebench import read_metadata
    from posebench.runtimes.deepsparse import engine_coverage

    models = artifacts(args.out)
    coverage = {key[0]: engine_coverage(path, threads=2) for key, path in models.items()
                if key[1] == "deepsparse" and not options(key)}
    work = Path(tempfile.mkdtemp(prefix="deepsparse-int8-"))
    shutil.copytree(DATA / "coco-pose-mini", work / "coco-pose-mini")
    both = work / "coco-pose-mini" / "both.yaml"
    both.write_text((work / "coco-pose-mini" / "coco-pose-mini.yaml").read_text()
                    .replace("val: images/val", "val: [images/val, images/train2017]"))
    accuracy = score(models, both)
    timings = {threads: time_rounds(models, threads, args.rounds) for threads in (1, 2)}

    rows = []
    for threads, runs in timings.items():
        ds_base, ov_int8 = runs[("base", "deepsparse")], runs[("int8", "openvino")]
        for key, values in runs.items():
            meta = read_metadata(models[key])
            rows.append({"model": key[0], "runtime": key[1], "threads": threads, "artifact": models[key].name,
                         "form": meta.get("form") or meta.get("format"), "precision": meta.get("precision"),
                         "sparsity": meta.get("sparsity"), "p50_ms_rounds": values,
                         "p50_ms": statistics.median(values),
                         "x_vs_deepsparse_fp32_dense": statistics.median(b / v for b, v in zip(ds_base, values)),
                         "x_vs_openvino_int8_dense": statistics.median(b / v for b, v in zip(ov_int8, values)),
                         "spread": (max(values) - min(values)) / min(values),
                         "pose_map50_95": accuracy.get(key)})
    env = fingerprint()
    stem = f"deepsparse_int8-{env['int8_path']}"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{stem}.json").write_text(json.dumps(
        {"rows": rows, "coverage": coverage, "study": str(args.out), "environment": env}, indent=2))

    lines = [f"# DeepSparse int8 form x sparsity x runtime ({env.get('cpu_model')}, int8 path {env['int8_path']}, "
             f"DeepSparse {env['versions'].get('deepsparse', '1.8.0')})", "",
             (f"yolo11n-pose 640x640, batch 1, model-mode p50, {args.rounds} interleaved rounds with every backend "
              "loaded once; ratios within a round, median over rounds. Sparsity: one-shot unstructured magnitude "
              "(pose head's prediction convs dense), BatchNorm re-calibrated, no fine-tuning: these rows are for "
              "latency; their accuracy shows why the thesis fine-tuned. Pose mAP50-95 on coco-pose-mini "
              "val+train2017 (42 images) through that runtime at 2 threads."), "",
             ("| threads | model | precision | runtime | artifact (form) | weight sparsity | p50 ms | spread | "
              "x vs DS fp32 dense | x vs OV int8 dense | pose mAP50-95 |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sparsity = "-" if r["sparsity"] is None else f"{r['sparsity']:.2f}"
        acc = "-" if r["pose_map50_95"] is None else f"{r['pose_map50_95']:.3f}"
        lines.append(f"| {r['threads']} | {r['model']} | {r['precision']} | {r['runtime']} | {r['artifact']} "
                     f"({r['form']}) | {sparsity} | {r['p50_ms']:.1f} | {r['spread']:.0%} | "
                     f"{r['x_vs_deepsparse_fp32_dense']:.2f} | {r['x_vs_openvino_int8_dense']:.2f} | {acc} |")
    lines += ["", "## What DeepSparse's engine compiles (its own diagnostics, NM_LOGGING_LEVEL=info)", "",
              "| model | share of the network in the engine | subgraphs | refusals / failure |", "|---|---|---|---|"]
    for name, c in coverage.items():
        why = "; ".join([f"{k} (x{v})" for k, v in c["unsupported"].items()] + ([c["failure"]] if c["failure"] else []))
        lines.append(f"| {name} | {c['percent']:.0f} % | {c['subgraphs']} | {why or 'none'} |")
    (HERE / "results" / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
