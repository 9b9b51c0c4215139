"""`posebench tune` for the street video (16:9, 1280x720), the issue-13 setting: yolo11n-pose on OpenVINO at 2
threads, frames 0-149 and the two Ultralytics sample images calibrate and train, frames 150-204 judge (fidelity
against the fp32 model at 640x640); Ultralytics' OpenVINO int8 export at 640x640 is the reference.

    python benchmarks/tune_street.py [--macs 1 0.75] [--epochs 3] [--sizes 640x640 384x640] [--work DIR]
        [--out benchmarks/results]

Copies the tune report and summary to OUT/tune_street-<int8 path>.md/.json (under ONEDNN_MAX_CPU_ISA:
tune_street-<this CPU's int8 path>-capped-<cap>). Resumable: give the same --work.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from channel_pruning import SHARED

from posebench import resolve_model
from posebench import fingerprint
from posebench.tune import TunePlan, default_runtimes, tune, ultralytics_openvino
from posebench.report.tune import write_tune_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macs", type=float, nargs="+", default=[1.0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8", "int8-fast", "int8-ultralytics"])
    parser.add_argument("--sizes", nargs="+", default=[], metavar="HxW",
                        help="input sizes (default: tune's own, from the footage's aspect)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    from ultralytics.utils import ASSETS

    work = args.work or Path(tempfile.mkdtemp(prefix="posebench-tune-"))
    isa = fingerprint().get("isa") or []
    sizes = tuple(tuple(int(v) for v in size.lower().split("x")) for size in args.sizes)
    # OpenVINO in f32 and, on a CPU with bf16 arithmetic, in bf16 too; the reference as Ultralytics runs it there
    plan = TunePlan(source=resolve_model(None), footage=SHARED / "street-video" / "street.avi", out=work,
                    runtimes=default_runtimes(isa), reference_runtime=ultralytics_openvino(isa), threads=(2,),
                    sizes=sizes, precisions=tuple(args.precisions), macs=tuple(args.macs),
                    recovery_epochs=args.epochs, extra_calibration=(Path(ASSETS),), eval_from=150)
    summary = tune(plan, lambda what, done, total: print(what, flush=True))
    write_tune_report(work, summary)
    env = summary["environment"]
    cap = env.get("onednn_max_cpu_isa")
    isa = f"{env['native_int8_path']}-capped-{cap.lower()}" if cap else env["int8_path"]
    args.out.mkdir(parents=True, exist_ok=True)
    report = (work / "tune.md").read_text()
    if (work / "tune-pareto.png").is_file():
        shutil.copyfile(work / "tune-pareto.png", args.out / f"tune_street-{isa}-pareto.png")
        report = report.replace("(tune-pareto.png)", f"(tune_street-{isa}-pareto.png)")
    (args.out / f"tune_street-{isa}.md").write_text(report)
    (args.out / f"tune_street-{isa}.json").write_text(json.dumps(summary, indent=2))
    print((work / "tune.md").read_text())


if __name__ == "__main__":
    main()
