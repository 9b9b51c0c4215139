"""Real time, end to end (issue 12): posebench's pipeline against Ultralytics' own `predict`, side by side.

yolo11n-pose on OpenVINO at 2 threads, frames of the street video (1280x720, 16:9), everything loaded once in this
process and timed in interleaved rounds (ratios within a round, then the median over rounds):

1. per frame, end to end, 640x640 int8: Ultralytics' `YOLO(its OpenVINO int8 export).predict(frame)` (timed around
   the whole call; its own pre / inference / post split from `results[0].speed`) against posebench's pipeline on
   posebench's int8 IR and on Ultralytics' own IR (fused pre-processing, numpy decode + NMS), and posebench's model
   mode (the runtime call on a fixed tensor) on the same IR;
2. the stream: the whole video, as fast as possible, decoding included: Ultralytics' `predict(source=video,
   stream=True)` with its int8 export at 640x640 against `posebench.stream` with int8 at the footage's aspect
   (384x640), and the fidelity of that 384x640 deployment against the same model at 640x640 on the same frames.

    python benchmarks/realtime.py [--rounds 5] [--iters 120] [--work DIR] [--out benchmarks/results]

Writes OUT/realtime-<int8 path>.md/.json. Needs ../shared/data (the street video).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from side_by_side import openvino_predictor, ultralytics_ir, video_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VIDEO = SHARED / "street-video" / "street.avi"
ROOT = Path(__file__).resolve().parents[1]
BF16 = "posebench fp32 IR in bf16"
INT8_BF16 = "posebench int8 (PTQ, float head in bf16)"


def build(work: Path) -> dict[str, Path]:
    """int8 bundles (posebench PTQ at 640x640 and 384x640, Ultralytics' export at 640x640), calibrated on frames
    0-148 (every other one) of the street video; built once per work folder."""
    calib = video_frames(VIDEO, work / "calib", step=2)
    recipes = {"int8-640": ROOT / "recipes" / "int8-ptq.yaml", "ultralytics-int8-640":
               ROOT / "recipes" / "ultralytics-openvino-int8.yaml"}
    r384 = work / "int8-384x640.yaml"
    r384.write_text((ROOT / "recipes" / "int8-ptq.yaml").read_text().replace("imgsz: 640", "imgsz: [384, 640]"))
    recipes["int8-384x640"] = r384
    u384 = work / "ultralytics-int8-384x640.yaml"
    u384.write_text((ROOT / "recipes" / "ultralytics-openvino-int8.yaml").read_text().replace("imgsz: 640",
                                                                                              "imgsz: [384, 640]"))
    recipes["ultralytics-int8-384x640"] = u384
    out = {}
    for name, recipe in recipes.items():
        folder = work / name
        if not (folder / "bundle.json").is_file() and not any(folder.glob("*_openvino_model")):
            print(f"building {name}", flush=True)
            subprocess.run([sys.executable, "-m", "posebench", "compress", "--recipe", str(recipe), "--calib",
                            str(calib), "--out", str(folder)], check=True, stdout=subprocess.DEVNULL)
        out[name] = folder
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iters", type=int, default=24, help="timed frames per configuration and round")
    parser.add_argument("--stream-rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/posebench-realtime"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if not VIDEO.is_file():
        raise SystemExit(f"{VIDEO} not found: this benchmark needs the project's shared data")
    from ultralytics import YOLO

    from posebench.environment import fingerprint
    from posebench.evaluate.validate import Predictor, fidelity, pseudo_truth
    from posebench.export import ArtifactStore
    from posebench.measure import fixed_input
    from posebench.models import resolve_model
    from posebench.pipeline import PREDICT_NMS, load_frames, open_pipeline
    from posebench.stream import FrameSource, run_stream

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    bundles = build(work)
    ul_dir = ultralytics_ir(bundles["ultralytics-int8-640"]).parent
    pb640 = ArtifactStore(resolve_model(str(bundles["int8-640"]))).get("openvino", (640, 640))
    pb640_onnx = ArtifactStore(resolve_model(str(bundles["int8-640"]))).get("onnx", (640, 640))
    pb384 = ArtifactStore(resolve_model(str(bundles["int8-384x640"]))).get("openvino", (384, 640))
    ul_ir = ArtifactStore(resolve_model(str(ul_dir))).get("openvino", (640, 640))
    frames = load_frames(VIDEO, 64)
    threads = args.threads
    env = fingerprint()
    print(f"{env.get('cpu_model')} ({env.get('int8_path')}), {threads} threads", flush=True)

    ul = YOLO(str(ul_dir), task="pose")
    ul.predict(frames[0], imgsz=640, verbose=False)  # loads its backend
    pipes = {"posebench pipeline, posebench int8 IR": open_pipeline("openvino", pb640, threads=threads),
             "posebench pipeline, Ultralytics' int8 IR": open_pipeline("openvino", ul_ir, threads=threads),
             "posebench pipeline (vectorised pre), posebench int8 IR": open_pipeline(
                 "openvino", pb640, threads=threads, preprocess="vectorised"),
             "posebench pipeline on onnxruntime (fused pre), posebench int8 QDQ": open_pipeline(
                 "onnxruntime", pb640_onnx, threads=threads, preprocess="fused"),
             "posebench pipeline on onnxruntime (vectorised pre), posebench int8 QDQ": open_pipeline(
                 "onnxruntime", pb640_onnx, threads=threads, preprocess="vectorised")}
    from posebench.runtimes import create_backend

    model_mode = create_backend("openvino", pb640, threads=threads)
    tensor = fixed_input((1, 3, 640, 640))

    def time_ultralytics(n: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"total": [], "pre": [], "infer": [], "post": []}
        for i in range(n):
            frame = frames[i % len(frames)]
            t0 = time.perf_counter_ns()
            result = ul.predict(frame, imgsz=640, verbose=False, conf=PREDICT_NMS.conf, iou=PREDICT_NMS.iou)[0]
            out["total"].append((time.perf_counter_ns() - t0) / 1e6)
            out["pre"].append(result.speed["preprocess"])
            out["infer"].append(result.speed["inference"])
            out["post"].append(result.speed["postprocess"])
        return out

    def time_pipeline(pipe, n: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"total": [], "pre": [], "infer": [], "post": []}
        for i in range(n):
            t0 = time.perf_counter_ns()
            pipe(frames[i % len(frames)])
            out["total"].append((time.perf_counter_ns() - t0) / 1e6)
            for name, ns in zip(("pre", "infer", "post"), pipe.last_ns):
                out[name].append(ns / 1e6)
        return out

    def time_model(n: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"total": []}
        for _ in range(n):
            t0 = time.perf_counter_ns()
            model_mode.infer(tensor)
            out["total"].append((time.perf_counter_ns() - t0) / 1e6)
        return out

    configs = {"Ultralytics predict, its int8 IR": lambda n: time_ultralytics(n),
               **{name: (lambda n, p=p: time_pipeline(p, n)) for name, p in pipes.items()},
               "posebench model mode, posebench int8 IR": time_model}
    for fn in configs.values():  # warm-up
        fn(20)
    rounds: list[dict[str, dict[str, float]]] = []
    for r in range(args.rounds):
        row = {}
        for name, fn in configs.items():
            samples = fn(args.iters)
            row[name] = {k: float(np.median(v)) for k, v in samples.items()}
        rounds.append(row)
        print(f"round {r + 1}: " + ", ".join(f"{k}: {v['total']:.1f} ms" for k, v in row.items()), flush=True)

    def med(name: str, key: str = "total") -> float:
        return float(np.median([row[name][key] for row in rounds]))

    def ratio(a: str, b: str, key_a: str = "total", key_b: str = "total") -> float:
        return float(np.median([row[a][key_a] / row[b][key_b] for row in rounds]))

    ul_name, pb_name, pbul_name, vec_name, ortf_name, ortv_name, mm_name = list(configs)
    pre_post = {name: [row[name]["pre"] + row[name]["post"] for row in rounds] for name in (ul_name, pb_name, pbul_name)}
    e2e = {
        "rows": {name: {k: med(name, k) for k in rounds[0][name]} for name in configs},
        "e2e_over_model_mode": ratio(pb_name, mm_name),
        "pre_post_ms": {k: float(np.median(v)) for k, v in pre_post.items()},
        "pre_post_vs_ultralytics": float(np.median([a / b for a, b in zip(pre_post[pb_name], pre_post[ul_name])])),
        "e2e_speedup_vs_ultralytics": ratio(ul_name, pb_name),
        "same_ir_speedup_vs_ultralytics": ratio(ul_name, pbul_name),
        "fused_over_vectorised": {"openvino": ratio(pb_name, vec_name), "onnxruntime": ratio(ortf_name, ortv_name)},
    }
    for p in pipes.values():
        p.backend.close()
    model_mode.close()

    # the stream: the whole video, as fast as possible, decoding included; posebench streams at the footage's
    # aspect (384x640) with its own int8 and with Ultralytics' int8 export made at that size
    ul384 = ArtifactStore(resolve_model(str(ultralytics_ir(bundles["ultralytics-int8-384x640"]).parent))).get(
        "openvino", (384, 640))
    streamed = {"posebench int8 (PTQ, float head)": pb384, "Ultralytics' int8 export": ul384}
    options: dict[str, dict] = {}
    fp32_384 = ArtifactStore(resolve_model(None)).get("openvino", (384, 640))
    bf16 = bool({"avx512_bf16", "amx_bf16"} & set(env.get("isa") or []))
    if bf16:  # a CPU with bf16 arithmetic: what Ultralytics' OpenVINO does here (float parts in bf16), for both
        streamed[INT8_BF16] = pb384
        streamed[BF16] = fp32_384
        options[INT8_BF16] = options[BF16] = {"inference_precision": "bf16"}
    stream_pipes = {name: open_pipeline("openvino", path, threads=threads, options=options.get(name))
                    for name, path in streamed.items()}
    stream_rows: list[dict[str, float]] = []
    for r in range(args.stream_rounds):
        t0 = time.perf_counter()
        n = sum(1 for _ in ul.predict(str(VIDEO), imgsz=640, stream=True, verbose=False, conf=PREDICT_NMS.conf))
        row: dict[str, float] = {"ultralytics_fps": n / (time.perf_counter() - t0), "ultralytics_frames": n}
        for name, pipe in stream_pipes.items():
            source = FrameSource(VIDEO)
            stats = run_stream(pipe, source, pace="max")
            source.close()
            row[name] = stats.sustained_fps
            row[f"{name} ratio"] = stats.sustained_fps / row["ultralytics_fps"]
        stream_rows.append(row)
        print(f"stream round {r + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    for pipe in stream_pipes.values():
        pipe.backend.close()

    # fidelity of each 384x640 deployment against the same model at 640x640 on the same frames
    frames_eval = [image for index, image in FrameSource(VIDEO).frames() if index % 4 == 0]
    fp32_640 = ArtifactStore(resolve_model(None)).get("openvino", (640, 640))

    def predictor(path: Path, size: tuple[int, int], precision: str = "f32") -> Predictor:
        return openvino_predictor(path, size, threads, precision)

    fid = {}
    for label, ref_path, cand_path in (("posebench int8 384x640 vs posebench int8 640x640", pb640, pb384),
                                       ("Ultralytics int8 384x640 vs Ultralytics int8 640x640", ul_ir, ul384),
                                       ("fp32 384x640 vs fp32 640x640", fp32_640, fp32_384),
                                       ("posebench int8 384x640 vs fp32 640x640", fp32_640, pb384),
                                       ("Ultralytics int8 384x640 vs fp32 640x640", fp32_640, ul384)):
        ref = predictor(ref_path, (640, 640))
        truths = [pseudo_truth(ref, f) for f in frames_eval]
        fid[label] = fidelity(predictor(cand_path, (384, 640)), frames_eval, truths)["fidelity"]
        print(f"fidelity {label}: {fid[label]:.4f}", flush=True)
    if bf16:
        truths = [pseudo_truth(predictor(fp32_640, (640, 640)), f) for f in frames_eval]
        for label, path in (("fp32 IR in bf16 384x640 vs fp32 640x640", fp32_384),
                            ("posebench int8 with bf16 float parts 384x640 vs fp32 640x640", pb384)):
            fid[label] = fidelity(predictor(path, (384, 640), "bf16"), frames_eval, truths)["fidelity"]
            print(f"fidelity {label}: {fid[label]:.4f}", flush=True)

    summary = {"environment": {k: env.get(k) for k in ("cpu_model", "int8_path", "isa", "cores")},
               "threads": threads, "rounds": args.rounds, "iters": args.iters, "frames": len(frames),
               "e2e": e2e, "per_round": rounds, "stream": {
                   "rows": stream_rows, "streamed": list(streamed),
                   **{f"{k} (median)": float(np.median([r[k] for r in stream_rows])) for k in stream_rows[0]}},
               "fidelity": fid}
    isa = env.get("int8_path", "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"realtime-{isa}.json").write_text(json.dumps(summary, indent=2))
    (args.out / f"realtime-{isa}.md").write_text(markdown(summary))
    print(markdown(summary))


def markdown(s: dict) -> str:
    e, st, env = s["e2e"], s["stream"], s["environment"]
    lines = [f"# Real time, end to end: posebench against Ultralytics' predict ({env['cpu_model']}, {env['int8_path']}, "
             f"{s['threads']} threads)", "",
             f"yolo11n-pose, OpenVINO, street video (1280x720) frames; {s['rounds']} interleaved rounds of "
             f"{s['iters']} frames per configuration; medians over rounds.", "",
             "## Per frame, end to end, int8 640x640", "",
             "| configuration | total p50 ms | pre | infer | post |", "|---|---|---|---|---|"]
    for name, row in e["rows"].items():
        cells = [f"{row.get(k, float('nan')):.2f}" if k in row else "-" for k in ("pre", "infer", "post")]
        lines.append(f"| {name} | {row['total']:.1f} | " + " | ".join(cells) + " |")
    lines += ["", f"- posebench end to end / its model mode (same IR): **{e['e2e_over_model_mode']:.3f}x** "
                  "(goal <= 1.10)",
              f"- pre + post: posebench {e['pre_post_ms']['posebench pipeline, posebench int8 IR']:.2f} ms vs "
              f"Ultralytics {e['pre_post_ms']['Ultralytics predict, its int8 IR']:.2f} ms: "
              f"**{e['pre_post_vs_ultralytics']:.2f}x** (goal <= 0.5)",
              f"- end to end, Ultralytics / posebench: {e['e2e_speedup_vs_ultralytics']:.2f}x (posebench's IR), "
              f"{e['same_ir_speedup_vs_ultralytics']:.2f}x (Ultralytics' own IR through posebench's pipeline)",
              "- pre-processing fused into the model / vectorised numpy, end to end: "
              + ", ".join(f"{k} {v:.3f}x" for k, v in e["fused_over_vectorised"].items()), "",
              "## The stream: whole video, as fast as possible, decoding included", "",
              "Ultralytics: `predict(source=video, stream=True)` with its int8 export at 640x640. posebench: "
              "`posebench stream --pace max` at the footage's aspect, 384x640, with each int8 artifact, and on CPUs with "
              "bf16 arithmetic the fp32 IR run in bf16 (fps, and x Ultralytics in the same round).", "",
              "| round | Ultralytics predict, int8 640x640 | " + " | ".join(f"posebench stream, {n}, 384x640"
                                                                      for n in st["streamed"]) + " |",
              "|---|---|" + "---|" * len(st["streamed"])]
    for i, r in enumerate(st["rows"], 1):
        lines.append(f"| {i} | {r['ultralytics_fps']:.1f} fps | " + " | ".join(
            f"{r[n]:.1f} fps ({r[n + ' ratio']:.2f}x)" for n in st["streamed"]) + " |")
    lines += ["", "Median over rounds: " + ", ".join(f"{n} **{st[n + ' ratio (median)']:.2f}x**" for n in
                                                      st["streamed"]) + " (goal >= 1.4).", "",
              "## Fidelity of the 384x640 input against 640x640 (COCO keypoint AP against the 640x640 model's "
              "confident poses, every 4th frame; 1.0 = same poses)", ""]
    lines += [f"- {k}: **{v:.4f}**" for k, v in s["fidelity"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
