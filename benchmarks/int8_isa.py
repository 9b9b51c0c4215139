"""Int8 accuracy on both x86 int8 paths: VNNI (int32 sums) and non-VNNI (saturating int16 pair sums).

yolo11n-pose at 640, int8 PTQ (default recipe, float head) calibrated on 64 street-video frames, built
for two targets: `avx512_vnni` (full 8-bit weights) and `avx2` (7-bit weights, what posebench picks on
CPUs without VNNI). Each QDQ model and the fp32 model are scored on coco-pose-mini val+train2017
through ONNX Runtime natively on this machine and under `qemu-x86_64 -cpu Haswell-noTSX` (AVX2 + FMA, no
AVX-512, no VNNI: ONNX Runtime's MLAS then dispatches its AVX2 u8s8 kernels, the ones that saturate).
The emulated rows are the non-VNNI path itself (same binary, same kernels), only slower. fp32 runs natively
only: it does not touch the int8 kernels. On a CPU whose own int8 path saturates (AVX2, AVX-512 without VNNI)
the native rows already are the non-VNNI path, measured, and the emulation is skipped.
Writes benchmarks/results/int8_isa-<this machine's int8 path>.{json,md}. Needs ../shared/data, and
`apt-get install qemu-user` on a VNNI machine.

Run: .venv/bin/python benchmarks/int8_isa.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data"
OUT = HERE / "results"
IMGSZ = (640, 640)
QEMU_CPU = "Haswell-noTSX"


def score(onnx: str, data: str, threads: int) -> dict:
    """Pose/box mAP of one ONNX model through ONNX Runtime (run natively or under qemu)."""
    from posebench import read_metadata
    from posebench import load_dataset
    from posebench import NMSConfig
    from posebench import Predictor, validate
    from posebench import create_backend

    meta = read_metadata(Path(onnx))
    dataset = load_dataset(Path(data), split="val")
    start = time.time()
    with create_backend("onnxruntime", Path(onnx), threads=threads) as backend:
        result = validate(Predictor(backend, IMGSZ, tuple(meta["kpt_shape"]), NMSConfig()), dataset)
    return {"pose": result["pose"], "box": result["box"], "images": result["images"], "seconds": time.time() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", nargs=3, metavar=("ONNX", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        onnx, data, out = args.worker
        Path(out).write_text(json.dumps(score(onnx, data, args.threads)))
        return 0
    from posebench import ArtifactStore
    from posebench import Recipe
    from posebench import CompressOptions
    from posebench.compress.run import compress
    from posebench import fingerprint
    from posebench import resolve_model

    if not (DATA / "coco-pose-mini").is_dir():
        sys.exit(f"needs the labelled data at {DATA / 'coco-pose-mini'}")
    from posebench.machine.isa import SATURATING, this_machine

    native_saturates = this_machine() in SATURATING
    qemu = shutil.which("qemu-x86_64")
    if not qemu and not native_saturates:
        sys.exit("needs qemu-x86_64: apt-get install qemu-user")
    work = Path(tempfile.mkdtemp(prefix="int8-isa-"))
    data = work / "coco-pose-mini"
    shutil.copytree(DATA / "coco-pose-mini", data)
    text = (data / "coco-pose-mini.yaml").read_text()
    (data / "both.yaml").write_text(text.replace("val: images/val", "val: [images/val, images/train2017]"))
    cache = work / "cache"
    models = {"fp32": ArtifactStore(resolve_model(None), cache).get("onnx", IMGSZ)}
    recipe = Recipe.load(REPO / "recipes" / "int8-ptq.yaml")
    recipe = Recipe.from_yaml(recipe.to_yaml().replace("calibration_images: 128", "calibration_images: 64"))
    for target in ("avx512_vnni", "avx2"):
        out = work / f"int8-{target}"
        compress(resolve_model(None), recipe, out, options=CompressOptions(
            calibration=DATA / "street-video" / "street.avi", cache_dir=cache, target_isa=target))
        models[f"int8 for {target}"] = out / "model-int8.onnx"
    rows = []
    for name, onnx in models.items():
        emulate = name != "fp32" and not native_saturates  # fp32 does not use int8 kernels
        for path in ("native", "emulated") if emulate else ("native",):
            result_file = work / f"{name.replace(' ', '_')}-{path}.json"
            command = [sys.executable, str(Path(__file__).resolve()), "--threads", str(args.threads),
                       "--worker", str(onnx), str(data / "both.yaml"), str(result_file)]
            if path == "emulated":
                command = [qemu, "-cpu", QEMU_CPU, *command]
            print(f"{name}: {path} ...", flush=True)
            subprocess.run(command, check=True, stderr=subprocess.DEVNULL if path == "emulated" else None)
            rows.append({"model": name, "path": path, **json.loads(result_file.read_text())})
            print(f"  pose mAP50-95 {rows[-1]['pose']['map50_95']:.4f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    env = fingerprint()
    OUT.mkdir(exist_ok=True)
    stem = f"int8_isa-{env['int8_path']}"
    (OUT / f"{stem}.json").write_text(json.dumps({"environment": env, "qemu_cpu": QEMU_CPU, "rows": rows},
                                                  indent=2))
    fp32 = next(r["pose"]["map50_95"] for r in rows if r["model"] == "fp32")
    lines = ["# Int8 accuracy on both x86 int8 paths (yolo11n-pose 640, coco-pose-mini val+train2017)", "",
             f"Machine: {env['cpu_model']}, {env['usable_cores']} cores, int8 path {env['int8_path']}. " +
             (f"'non-VNNI' = the same ONNX Runtime under `qemu-x86_64 -cpu {QEMU_CPU}` (AVX2 + FMA, no AVX-512, "
              "no VNNI), which makes MLAS dispatch its AVX2 u8s8 (saturating) kernels." if not native_saturates else
              "This CPU has no VNNI: its native rows are the non-VNNI (saturating) path, measured, not emulated."),
             "",
             "| model | int8 path | pose mAP50-95 | vs fp32 (points) | pose mAP50 | box mAP50-95 |", "|---|---|---|---|---|---|"]
    for r in rows:
        kind = "non-VNNI" if native_saturates else "VNNI"
        label = (("fp32 kernels" if r["model"] == "fp32" else f"{kind} (native, {env['int8_path']})")
                 if r["path"] == "native" else "non-VNNI (AVX2, emulated)")
        drop = (r["pose"]["map50_95"] - fp32) * 100
        lines.append(f"| {r['model']} | {label} | {r['pose']['map50_95']:.4f} | {drop:+.1f} | "
                     f"{r['pose']['map50']:.4f} | {r['box']['map50_95']:.4f} |")
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
