"""Which pyramid level's int8 error moves the poses? yolo11n-pose at 384x640 on the street video, OpenVINO, 2 threads:
int8 PTQ (full bias correction, 150 calibration frames 0-149) with one part of the neck and head at a time kept in
float, scored against fp32 at 640x640 and timed against the default preset. The finding behind the
`yolo-pose-float-coarse` preset: float at P4/P5 buys the fidelity the float head + neck preset buys, float at P3 buys
nothing, and P3 (most of the arithmetic) in int8 keeps the default's speed.

    python benchmarks/int8_levels.py [--work DIR] [--rounds 7] [--render OUT/int8_levels-....json]
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/int8_levels.py   # an AVX-512 machine running AVX2 kernels

Bundles are built without the oneDNN cap; fidelity and latency run under it (float parts in f32). Fidelity: COCO
keypoint AP against the fp32 model's confident poses at 640x640 on frames 150-204 (held out), every 4th frame, every
3rd of frames 0-149 (calibration) and every frame. Latency: model-mode p50, interleaved rounds, each artifact in a
fresh process. Writes OUT/int8_levels-<int8 path>[-capped-<cap>].md/.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from int8_fidelity import PTQ as FIDELITY_PTQ
from side_by_side import build_once, interleaved_latency, openvino_predictor, street_frame_sets, video_frames

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "data" / "street-video" / "street.avi"
SIZE = (384, 640)
PTQ = FIDELITY_PTQ + "    ignored_remove: {remove}\n    bias_correction: full\n"
P3, P4P5 = [r"^/model\.16/", r"^/model\.23/cv[23]\.0[/.]"], [r"^/model\.(?:19|22)/", r"^/model\.23/cv[23]\.[12][/.]"]
# name -> (what is float beyond the decode, preset, node-name patterns added to / removed from its float set)
VARIANTS = {
    "default": ("the keypoint branch (the default preset)", "yolo-pose-float-head", [], []),
    "+P3": ("the keypoint branch, P3's neck output and box/class branches", "yolo-pose-float-head", P3, []),
    "+P4/P5": ("the keypoint branch, P4/P5 neck outputs and box/class branches", "yolo-pose-float-head", P4P5, []),
    "+P4/P5 head": ("the keypoint branch, P4/P5 box/class branches", "yolo-pose-float-head", P4P5[1:], []),
    "+P4/P5 neck": ("the keypoint branch, P4/P5 neck outputs", "yolo-pose-float-head", P4P5[:1], []),
    "+P5": ("the keypoint branch, P5's neck output and box/class branch", "yolo-pose-float-head",
            [r"^/model\.22/", r"^/model\.23/cv[23]\.2[/.]"], []),
    "coarse": ("P4/P5 neck outputs and box/class branches, P5's keypoint branch (the coarse preset)",
               "yolo-pose-float-coarse", [], []),
    "coarse, keypoints int8": ("P4/P5 neck outputs and box/class branches", "yolo-pose-float-coarse", [],
                               [r"^/model\.23/cv4\.2[/.]"]),
    "coarse + C2PSA": ("the coarse preset and the P5 attention block", "yolo-pose-float-coarse", [r"^/model\.10/"],
                       []),
    "head-neck": ("the whole head and the three neck outputs (the head-neck preset)", "yolo-pose-float-head-neck",
                  [], []),
}


def folder(work: Path, name: str) -> Path:
    return work / name.replace("/", "").replace(",", "").replace("+", "plus").replace(" ", "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/posebench-int8-levels"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only rewrite the table of an earlier run")
    args = parser.parse_args()
    if args.render:
        summary = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(markdown(summary))
        print(markdown(summary))
        return
    if not VIDEO.is_file():
        raise SystemExit(f"{VIDEO} not found: this benchmark needs the project's shared data")
    from posebench import fingerprint
    from posebench import fidelity, pseudo_truth
    from posebench import ArtifactStore
    from posebench import resolve_model
    from posebench import FrameSource

    env = fingerprint()
    args.work.mkdir(parents=True, exist_ok=True)
    frames = video_frames(VIDEO, args.work / "frames0-149")
    irs: dict[str, Path] = {}
    for name, (what, preset, add, remove) in VARIANTS.items():
        bundle = build_once(PTQ.format(name=name, what=f"{what} in float", preset=preset, add=json.dumps(add),
                                       remove=json.dumps(remove)), folder(args.work, name), frames)
        irs[name] = ArtifactStore(resolve_model(str(bundle))).get("openvino", SIZE)

    sets = {**street_frame_sets(VIDEO), "every frame": [image for _, image in FrameSource(VIDEO).frames()]}
    dense = openvino_predictor(ArtifactStore(resolve_model(None)).get("openvino", (640, 640)), (640, 640))
    truths = {k: [pseudo_truth(dense, f) for f in v] for k, v in sets.items()}
    fid: dict[str, dict[str, float]] = {}
    for name, ir in irs.items():
        candidate = openvino_predictor(ir, SIZE)
        fid[name] = {k: fidelity(candidate, sets[k], truths[k])["fidelity"] for k in sets}
        print(name, " ".join(f"{v:.4f}" for v in fid[name].values()), flush=True)
    latency = interleaved_latency({name: {"openvino": ir} for name, ir in irs.items()}, rounds=args.rounds,
                                  seconds=args.seconds, imgsz=SIZE)

    cap = env.get("onednn_max_cpu_isa")
    isa = f"{env['native_int8_path']}-capped-{cap.lower()}" if cap else env.get("int8_path", "cpu")
    summary = {"environment": {k: env.get(k) for k in ("cpu_model", "int8_path", "isa", "usable_cores",
                                                       "onednn_max_cpu_isa", "native_int8_path") if k in env},
               "variants": {k: v[0] for k, v in VARIANTS.items()}, "rounds": args.rounds, "fidelity": fid,
               "latency": latency}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"int8_levels-{isa}.json").write_text(json.dumps(summary, indent=2))
    (args.out / f"int8_levels-{isa}.md").write_text(markdown(summary))
    print(markdown(summary))


def markdown(s: dict) -> str:
    """The table: fidelity per frame set, p50 (median and best round) and both against the default preset's."""
    from posebench import ran_as

    rounds = {name: [r["p50_ms"] for r in s["latency"][f"{name}|openvino"]["rounds"]] for name in s["variants"]}
    sets = list(next(iter(s["fidelity"].values())))
    lines = [f"# Which pyramid level's int8 error moves the poses ({s['environment'].get('cpu_model')}, "
             f"{ran_as(s['environment'])}, 2 threads)", "",
             "yolo11n-pose at 384x640 on the street video, OpenVINO (float parts in f32); int8 PTQ with full bias "
             "correction on frames 0-149. Fidelity: COCO keypoint AP against the fp32 model at 640x640 (1.0 = the "
             f"same poses). p50: model mode, {s['rounds']} interleaved rounds, each artifact in a fresh process: the "
             "median over rounds, and the best round (a fresh process here lands on a fast or a slow placement, "
             "about 14 or 18 ms for the same IR, so the medians move by up to 20 % between runs; the best rounds "
             "agree with in-process interleaving); x default: against the default preset's.", "",
             "| variant | float beyond the decode | " + " | ".join(sets) +
             " | p50 ms (median / best) | x default (median of per-round ratios / best) |",
             "|---" * (len(sets) + 4) + "|"]
    for name, what in s["variants"].items():
        mine, base = rounds[name], rounds["default"]
        per_round = float(np.median([a / b for a, b in zip(mine, base)]))
        lines.append(f"| {name} | {what} | " + " | ".join(f"{s['fidelity'][name][k]:.4f}" for k in sets) +
                     f" | {np.median(mine):.1f} / {min(mine):.1f} | {per_round:.2f} / {min(mine) / min(base):.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
