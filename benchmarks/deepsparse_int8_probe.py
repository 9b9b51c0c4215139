"""Quick check of DeepSparse int8 against fp32 for one model (issue 15): is int8 faster on this CPU, and in which form?

Builds an int8 PTQ bundle of --model (default: the embedded yolo11n-pose; `yolov8s-pose.yaml` is the thesis's
architecture, random weights, which do not change the speed of dense kernels), calibrated on the street video,
and its fp32 ONNX; asks DeepSparse what it compiles of each; times DeepSparse on fp32, on the bundle's DeepSparse
form (ConvInteger blocks) and on its QDQ ONNX, every backend loaded once, interleaved rounds, at 2 and 1 threads.
Ratios within a round, median over rounds. Writes benchmarks/results/deepsparse_int8_probe-<model>-<int8 path>.md.

Run: .venv/bin/python benchmarks/deepsparse_int8_probe.py [--model yolov8s-pose.yaml] [--rounds 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VIDEO = REPO.parent / "shared" / "data" / "street-video" / "street.avi"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/posebench-deepsparse-probe"))
    args = parser.parse_args()
    import numpy as np

    from posebench import fingerprint
    from posebench.export.fp32 import checkpoint_artifact, export_fp32_onnx
    from posebench import LatencyProtocol
    from posebench import resolve_model
    from posebench import create_backend
    from posebench.runtimes.deepsparse import engine_coverage

    name = Path(str(args.model)).stem if args.model != "default" else "yolo11n-pose"
    work = args.work / name
    bundle = work / "int8"
    if not (bundle / "bundle.json").is_file():
        calib = VIDEO if VIDEO.is_file() else None
        subprocess.run([sys.executable, "-m", "posebench", "compress", "--model", args.model, "--recipe",
                        str(REPO / "recipes" / "int8-ptq.yaml"), "--out", str(bundle)]
                       + (["--calib", str(calib)] if calib else []), check=True)
    fp32 = work / f"model-{args.imgsz}.onnx"
    if not fp32.is_file():
        source = resolve_model(bundle / "source.pt" if (bundle / "source.pt").is_file() else args.model)
        export_fp32_onnx(checkpoint_artifact(source, source.path), fp32, (args.imgsz, args.imgsz))
    models = {"fp32": fp32, "int8, DeepSparse form (ConvInteger)": bundle / "model-int8-deepsparse.onnx",
              "int8, QDQ ONNX": bundle / "model-int8.onnx"}
    coverage = {label: engine_coverage(path, threads=2) for label, path in models.items()}
    protocol = LatencyProtocol(iters=60, min_seconds=2, warmup_iters=10, warmup_seconds=1)
    batch = np.random.default_rng(0).random((1, 3, args.imgsz, args.imgsz), dtype=np.float32)
    rows = []
    for threads in (2, 1):
        backends = {label: create_backend("deepsparse", path, threads=threads) for label, path in models.items()}
        runs: dict[str, list[float]] = {label: [] for label in models}
        try:
            for n in range(args.rounds):
                for label, backend in backends.items():
                    runs[label].append(backend.measure(batch, protocol).p50_ms)
                    print(f"threads {threads} round {n + 1}/{args.rounds}: {label} {runs[label][-1]:.1f} ms",
                          flush=True)
        finally:
            for backend in backends.values():
                backend.close()
        for label, values in runs.items():
            rows.append((threads, label, statistics.median(values), (max(values) - min(values)) / min(values),
                         statistics.median(b / v for b, v in zip(runs["fp32"], values))))
    env = fingerprint()
    lines = [f"# DeepSparse int8 against fp32: {name} {args.imgsz}x{args.imgsz} ({env.get('cpu_model')}, int8 path "
             f"{env['int8_path']}, DeepSparse 1.8.0)", "",
             f"Batch 1, model-mode p50, {args.rounds} interleaved rounds, every backend loaded once; int8 PTQ "
             f"(`recipes/int8-ptq.yaml`, pose head's prediction convs in float). Made by "
             f"`benchmarks/deepsparse_int8_probe.py --model {args.model}`.", "",
             "| threads | model | p50 ms | spread | x vs fp32 | share of the network DeepSparse compiles |",
             "|---|---|---|---|---|---|"]
    for threads, label, p50, spread, ratio in rows:
        share = coverage[label]["percent"]
        lines.append(f"| {threads} | {label} | {p50:.1f} | {spread:.0%} | {ratio:.2f} | {share:.0f} % |")
    out = HERE / "results" / f"deepsparse_int8_probe-{name}-{env['int8_path']}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
