"""OpenVINO int8 race: our int8 artifacts against Ultralytics' own OpenVINO int8 export, side by side.

Each round measures every artifact once (batch 1, 2 threads, fresh process each), in a rotated order; the
speed ratio against Ultralytics' export is taken *within* a round (robust to the machine drifting between
rounds) and the median over rounds reported. Artifacts come from `qat_study.py`'s work folder.
Writes benchmarks/results/openvino_int8_race.{json,md}.

Run: .venv/bin/python benchmarks/openvino_int8_race.py WORK_DIR [--rounds 5] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import median

from posebench import measure_in_child
from posebench import fingerprint

HERE = Path(__file__).resolve().parent
OUT = HERE / "results"
THEIRS = "int8 (Ultralytics OpenVINO export)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="qat_study.py's work folder (/tmp/qat-study-*)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    artifacts = {
        "fp32": next((args.work / "cache").glob("yolo11n-pose-*/model-640x640_openvino/model.xml")),
        "int8 PTQ (float head)": args.work / "int8_PTQ" / "model-int8_openvino" / "model.xml",
        "int8 QAT (float head)": args.work / "int8_QAT_(labels)" / "model-int8_openvino" / "model.xml",
        "int8 QAT (float decode)": args.work / "int8_QAT_float-decode_(labels)" / "model-int8_openvino" / "model.xml",
        THEIRS: next((args.work / "ultralytics").glob("*_int8_openvino_model/*.xml")),
    }
    names = list(artifacts)
    rounds: list[dict[str, float]] = []
    for k in range(args.rounds):
        order = names[k % len(names):] + names[:k % len(names)]
        p50 = {}
        for name in order:
            spec = {"runtime": "openvino", "artifact": str(artifacts[name]), "threads": 2, "imgsz": [640, 640],
                    "options": {}, "protocol": {"iters": 100, "min_seconds": args.seconds, "warmup_iters": 20,
                                                "warmup_seconds": 2.0, "max_seconds": 0.0}}
            result = measure_in_child(spec)
            p50[name] = result["latency"]["p50_ms"]
            print(f"round {k + 1} {name:26s} p50 {p50[name]:.2f} ms", flush=True)
        rounds.append(p50)
    summary = {name: {"p50_ms": median(r[name] for r in rounds),
                      "ratio_vs_ultralytics": median(r[THEIRS] / r[name] for r in rounds)} for name in names}
    OUT.mkdir(exist_ok=True)
    env = fingerprint()
    (OUT / "openvino_int8_race.json").write_text(json.dumps({"environment": env, "rounds": rounds,
                                                             "summary": summary}, indent=2, default=str))
    lines = ["# OpenVINO int8 race: yolo11n-pose 640x640, batch 1, 2 threads", "",
             f"Machine: {env['cpu_model']}, {env['usable_cores']} cores. {args.rounds} rounds, rotated order; "
             "ratio = Ultralytics' p50 / ours within each round, median over rounds (>1: ours faster).", "",
             "| artifact | median p50 ms | speed ratio vs Ultralytics' int8 export |", "|---|---|---|"]
    lines += [f"| {name} | {s['p50_ms']:.2f} | {s['ratio_vs_ultralytics']:.2f}x |" for name, s in summary.items()]
    (OUT / "openvino_int8_race.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
