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
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/realtime.py   # an AVX-512 machine running OpenVINO's AVX2 kernels

Writes OUT/realtime-<int8 path>.md/.json (under a oneDNN ISA cap: realtime-<this CPU's int8 path>-capped-
<cap>). Needs ../shared/data (the street video). Artifacts are built without the cap (an IR is built once and deployed
anywhere); every measurement runs under it, Ultralytics' OpenVINO included (in f32, as on a CPU without bf16).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from side_by_side import openvino_predictor, street_frame_sets, ultralytics_ir, video_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VIDEO = SHARED / "street-video" / "street.avi"
ROOT = Path(__file__).resolve().parents[1]


def build(work: Path) -> dict[str, Path]:
    """int8 bundles (posebench PTQ at 640x640 and 384x640, Ultralytics' export at 640x640 and 384x640), calibrated
    on frames 0-149 of the street video; built once per work folder, without any oneDNN ISA cap."""
    import os

    calib = video_frames(VIDEO, work / "calib150")
    uncapped = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    recipes = {"int8-640": ROOT / "recipes" / "int8-ptq.yaml", "ultralytics-int8-640":
               ROOT / "recipes" / "ultralytics-openvino-int8.yaml"}
    r384 = work / "int8-384x640.yaml"
    r384.write_text((ROOT / "recipes" / "int8-ptq.yaml").read_text().replace("imgsz: 640", "imgsz: [384, 640]"))
    recipes["int8-384x640"] = r384
    for preset in ("head-neck", "coarse"):
        for size, name in (("640", f"int8-{preset}-640"), ("[384, 640]", f"int8-{preset}-384x640")):
            recipe = work / f"{name}.yaml"
            recipe.write_text((ROOT / "recipes" / f"int8-ptq-float-{preset}.yaml").read_text().replace(
                "imgsz: 640", f"imgsz: {size}").replace("calibration_images: 128", "calibration_images: 150"))
            recipes[name] = recipe
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
                            str(calib), "--out", str(folder)], check=True, stdout=subprocess.DEVNULL, env=uncapped)
        out[name] = folder
    return out


def stream_in_process(job: dict) -> float:
    """Sustained fps of one stream, measured in a fresh process (`--stream-one`)."""
    done = subprocess.run([sys.executable, __file__, "--stream-one", json.dumps(job)], check=True,
                          capture_output=True, text=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["fps"])


def stream_one(job: dict) -> float:
    """The whole video as fast as possible, after an untimed pass over its first 40 frames: Ultralytics'
    `predict(source=video, stream=True)` at 640x640, or `posebench.stream` with an artifact at its own size."""
    if job["kind"] == "ultralytics":
        import torch
        from ultralytics import YOLO

        from posebench.ultralytics_adapter import openvino_as_the_capped_cpu

        torch.set_num_threads(job["threads"])
        model = YOLO(job["path"], task="pose")
        with openvino_as_the_capped_cpu():  # the first predict loads the IR
            for i, _ in enumerate(model.predict(str(VIDEO), imgsz=640, stream=True, verbose=False, conf=0.25)):
                if i >= 40:
                    break
        t0 = time.perf_counter()
        n = sum(1 for _ in model.predict(str(VIDEO), imgsz=640, stream=True, verbose=False, conf=0.25))
        return n / (time.perf_counter() - t0)
    from posebench import open_pipeline
    from posebench import FrameSource, run_stream

    pipe = open_pipeline("openvino", Path(job["path"]), threads=job["threads"], options={
        "inference_precision": job["precision"], "streams": job["inflight"]})
    run_stream(pipe, FrameSource(VIDEO, max_frames=40), pace="max", inflight=job["inflight"])
    return run_stream(pipe, FrameSource(VIDEO), pace="max", inflight=job["inflight"]).sustained_fps


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--stream-one":
        print(json.dumps({"fps": stream_one(json.loads(sys.argv[2]))}))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iters", type=int, default=24, help="timed frames per configuration and round")
    parser.add_argument("--stream-rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/posebench-realtime-150"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if not VIDEO.is_file():
        raise SystemExit(f"{VIDEO} not found: this benchmark needs the project's shared data")
    from ultralytics import YOLO

    from posebench.machine.cpu import bf16_arithmetic
    from posebench import fingerprint, ran_as
    from posebench import Predictor, fidelity, pseudo_truth
    from posebench import ArtifactStore
    from posebench.measure import fixed_input
    from posebench import resolve_model
    from posebench.pipeline import PREDICT_NMS, load_frames, open_pipeline
    from posebench import FrameSource
    from posebench.ultralytics_adapter import openvino_as_the_capped_cpu

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
    cap = env.get("onednn_max_cpu_isa")
    print(f"{env.get('cpu_model')} ({ran_as(env)}), {threads} threads", flush=True)

    ul = YOLO(str(ul_dir), task="pose")
    with openvino_as_the_capped_cpu():
        ul.predict(frames[0], imgsz=640, verbose=False)  # loads its backend
    pipes = {"posebench pipeline, posebench int8 IR": open_pipeline("openvino", pb640, threads=threads),
             "posebench pipeline, Ultralytics' int8 IR": open_pipeline("openvino", ul_ir, threads=threads),
             "posebench pipeline (vectorised pre), posebench int8 IR": open_pipeline(
                 "openvino", pb640, threads=threads, preprocess="vectorised"),
             "posebench pipeline on onnxruntime (fused pre), posebench int8 QDQ": open_pipeline(
                 "onnxruntime", pb640_onnx, threads=threads, preprocess="fused"),
             "posebench pipeline on onnxruntime (vectorised pre), posebench int8 QDQ": open_pipeline(
                 "onnxruntime", pb640_onnx, threads=threads, preprocess="vectorised")}
    from posebench import create_backend

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
    # aspect (384x640) with its own int8 (presets: default float head; head and neck outputs in float; P4/P5 in
    # float), Ultralytics' int8 export made at that size and the fp32 IR, one and two frames in flight. On a CPU
    # with bf16 arithmetic float parts run in bf16, as they do in Ultralytics' OpenVINO there.
    ul384 = ArtifactStore(resolve_model(str(ultralytics_ir(bundles["ultralytics-int8-384x640"]).parent))).get(
        "openvino", (384, 640))
    hn384 = ArtifactStore(resolve_model(str(bundles["int8-head-neck-384x640"]))).get("openvino", (384, 640))
    hn640 = ArtifactStore(resolve_model(str(bundles["int8-head-neck-640"]))).get("openvino", (640, 640))
    co384 = ArtifactStore(resolve_model(str(bundles["int8-coarse-384x640"]))).get("openvino", (384, 640))
    co640 = ArtifactStore(resolve_model(str(bundles["int8-coarse-640"]))).get("openvino", (640, 640))
    fp32_384 = ArtifactStore(resolve_model(None)).get("openvino", (384, 640))
    bf16 = bf16_arithmetic(env.get("isa") or [])
    precision = "bf16" if bf16 else "f32"
    floats = ", float parts in bf16" if bf16 else ""
    hn_label = f"posebench int8 (float head + neck outputs, full bias correction{floats})"
    co_label = f"posebench int8 (P4/P5 head + neck outputs in float, full bias correction{floats})"
    streamed = {  # label -> (artifact, frames in flight)
        f"posebench int8 (float head{floats}), 1 in flight": (pb384, 1),
        f"posebench int8 (float head{floats}), 2 in flight": (pb384, 2),
        f"{hn_label}, 2 in flight": (hn384, 2),
        f"{co_label}, 2 in flight": (co384, 2),
        "Ultralytics' int8 export, 2 in flight": (ul384, 2),
        f"posebench fp32 IR{' in bf16' if bf16 else ''}, 2 in flight": (fp32_384, 2),
    }
    # every stream in a fresh process, interleaved by round, so no loaded model or thread pool of one stream shares
    # a process with another (Ultralytics' predict still ranges 36-45 fps between rounds: ratios are per round)
    jobs = {"Ultralytics predict, int8 640x640": {"kind": "ultralytics", "path": str(ul_dir), "threads": threads}}
    jobs.update({name: {"kind": "posebench", "path": str(path), "inflight": inflight, "precision": precision,
                        "threads": threads} for name, (path, inflight) in streamed.items()})
    stream_rows: list[dict[str, float]] = []
    for r in range(args.stream_rounds):
        fps = {name: stream_in_process(job) for name, job in jobs.items()}
        ul_name = next(iter(jobs))
        row: dict[str, float] = {"ultralytics_fps": fps[ul_name]}
        for name in streamed:
            row[name] = fps[name]
            row[f"{name} ratio"] = fps[name] / fps[ul_name]
        stream_rows.append(row)
        print(f"stream round {r + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)

    # fidelity of each 384x640 deployment, on the frame sets every fidelity benchmark uses: against the fp32 model
    # at 640x640 (shape and precision together), and against the same deployment at 640x640 (the shape alone)
    fp32_640 = ArtifactStore(resolve_model(None)).get("openvino", (640, 640))
    sets = {**street_frame_sets(VIDEO), "every frame": [image for _, image in FrameSource(VIDEO).frames()]}

    def predictor(path: Path, size: tuple[int, int], precision: str = "f32") -> Predictor:
        return openvino_predictor(path, size, threads, precision)

    comparisons = [  # label, reference (path, precision), candidate (path, precision)
        ("fp32 384x640 vs fp32 640x640", (fp32_640, "f32"), (fp32_384, "f32")),
        *([("fp32 IR in bf16 384x640 vs fp32 640x640", (fp32_640, "f32"), (fp32_384, "bf16"))] if bf16 else []),
        (f"posebench int8 (float head{floats}) 384x640 vs fp32 640x640", (fp32_640, "f32"), (pb384, precision)),
        (f"posebench int8 (float head{floats}) 384x640 vs the same at 640x640", (pb640, precision),
         (pb384, precision)),
        (f"{hn_label} 384x640 vs fp32 640x640", (fp32_640, "f32"), (hn384, precision)),
        (f"{hn_label} 384x640 vs the same at 640x640", (hn640, precision), (hn384, precision)),
        (f"{co_label} 384x640 vs fp32 640x640", (fp32_640, "f32"), (co384, precision)),
        (f"{co_label} 384x640 vs the same at 640x640", (co640, precision), (co384, precision)),
        ("Ultralytics int8 384x640 vs fp32 640x640", (fp32_640, "f32"), (ul384, precision)),
        ("Ultralytics int8 384x640 vs the same at 640x640", (ul_ir, precision), (ul384, precision)),
    ]
    fid: dict[str, dict[str, float]] = {}
    truths: dict[tuple, list] = {}
    for label, ref, cand in comparisons:
        fid[label] = {}
        for set_name, frames_eval in sets.items():
            key = (ref, set_name)
            if key not in truths:
                reference = predictor(ref[0], (640, 640), ref[1])
                truths[key] = [pseudo_truth(reference, f) for f in frames_eval]
            fid[label][set_name] = fidelity(predictor(cand[0], (384, 640), cand[1]), frames_eval,
                                            truths[key])["fidelity"]
        print(f"fidelity {label}: " + ", ".join(f"{k} {v:.4f}" for k, v in fid[label].items()), flush=True)

    summary = {"environment": {k: env.get(k) for k in ("cpu_model", "int8_path", "isa", "cores", "onednn_max_cpu_isa",
                                                       "native_int8_path") if k in env},
               "threads": threads, "rounds": args.rounds, "iters": args.iters, "frames": len(frames),
               "e2e": e2e, "per_round": rounds, "stream": {
                   "rows": stream_rows, "streamed": list(streamed),
                   **{f"{k} (median)": float(np.median([r[k] for r in stream_rows])) for k in stream_rows[0]}},
               "fidelity": fid}
    isa = f"{env['native_int8_path']}-capped-{cap.lower()}" if cap else env.get("int8_path", "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"realtime-{isa}.json").write_text(json.dumps(summary, indent=2))
    (args.out / f"realtime-{isa}.md").write_text(markdown(summary))
    print(markdown(summary))


def markdown(s: dict) -> str:
    e, st, env = s["e2e"], s["stream"], s["environment"]
    from posebench import ran_as

    cap = env.get("onednn_max_cpu_isa")
    lines = [f"# Real time, end to end: posebench against Ultralytics' predict ({env['cpu_model']}, {ran_as(env)}, "
             f"{s['threads']} threads)", "",
             f"yolo11n-pose, OpenVINO, street video (1280x720) frames; {s['rounds']} interleaved rounds of "
             f"{s['iters']} frames per configuration; medians over rounds.", "",
             *([f"OpenVINO and torch ran their {env['int8_path']} kernels (oneDNN obeys ONEDNN_MAX_CPU_ISA={cap}); "
                "ONNX Runtime's MLAS does not obey it, so its rows ran this CPU's own kernels. Ratios between OpenVINO "
                "rows are what the capped kernels give on this core, not a measurement of another CPU model.", ""]
               if cap else []),
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
              "`posebench stream --pace max [--inflight 2]` at the footage's aspect, 384x640 (fps, and x Ultralytics "
              "in the same round; rows with 2 frames in flight run two OpenVINO streams of one thread each). Every "
              "stream runs in a fresh process after an untimed pass over 40 frames; rounds interleave them.", "",
              "| posebench stream, 384x640 | " + " | ".join(f"round {i}" for i in range(1, len(st["rows"]) + 1))
              + " | median x Ultralytics |", "|---|" + "---|" * (len(st["rows"]) + 1),
              "| Ultralytics predict, int8 640x640 | " + " | ".join(f"{r['ultralytics_fps']:.1f} fps"
                                                                   for r in st["rows"]) + " | 1.00 |"]
    for n in st["streamed"]:
        lines.append(f"| {n} | " + " | ".join(f"{r[n]:.1f} fps ({r[n + ' ratio']:.2f}x)" for r in st["rows"])
                     + f" | **{st[n + ' ratio (median)']:.2f}x** |")
    sets = list(next(iter(s["fidelity"].values())))
    lines += ["", "Goal: >= 1.4x with fidelity >= 0.99 against the 640x640 model.", "",
              "## Fidelity of each 384x640 deployment (COCO keypoint AP against a reference's confident poses; "
              "1.0 = the same poses)", "",
              "| deployment vs reference | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    lines += [f"| {k} | " + " | ".join(f"{v[x]:.4f}" for x in sets) + " |" for k, v in s["fidelity"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
