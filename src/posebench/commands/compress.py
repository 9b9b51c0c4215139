"""`posebench compress`: its arguments and what it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from posebench.commands.args import positive_int
from posebench.errors import InvalidInputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `compress` and its flags to the subcommands."""
    comp = sub.add_parser("compress", help="prune a pose model with a recipe (one-shot or gradual, with recovery)",
                          description="Apply a recipe (recipes/*.yaml): one-shot and/or gradual magnitude pruning, "
                                      "optional BatchNorm re-calibration, fine-tuning through Ultralytics' trainer "
                                      "on labels (--data) or on pseudo-labels made by the dense model "
                                      "(--pseudo-labels), then int8 (PTQ or QAT) / fp16 quantization. Writes "
                                      "OUT/model.pt and a per-layer sparsity table; with quantization also a bundle "
                                      "(OUT/bundle.json, QDQ ONNX, OpenVINO IR) that bench / val / study take as --model.")
    comp.add_argument("--model", default=None, metavar="PATH_OR_YAML", help="model to compress (default: embedded)")
    comp.add_argument("--recipe", required=True, type=Path, help="recipe YAML (see recipes/)")
    comp.add_argument("--data", type=Path, default=None, help="labelled Ultralytics data YAML for fine-tuning")
    comp.add_argument("--pseudo-labels", type=Path, default=None, metavar="IMAGES_OR_VIDEO",
                      help="no labels: fine-tune on these images/frames labelled by the dense model")
    comp.add_argument("--bn-recalibration", type=Path, default=None, metavar="IMAGES_OR_VIDEO",
                      help="re-calibrate BatchNorm statistics on these images after one-shot pruning")
    comp.add_argument("--bn-calibrate", dest="bn_recalibration", type=Path, help=argparse.SUPPRESS)  # its old name
    comp.add_argument("--calib", type=Path, default=None, metavar="IMAGES_OR_VIDEO",
                      help="int8 calibration images, video or data YAML (train split); keep it disjoint from "
                           "the evaluation images (QAT: initial ranges; default: the training images)")
    comp.add_argument("--target-isa", default=None,
                      choices=["auto", "amx", "avx512_vnni", "avx_vnni", "avx512", "avx2", "generic"],
                      help="int8 kernels to build for (default: the recipe's target_isa, auto = this machine): "
                           "CPUs without VNNI (avx2, avx512) get 7-bit weights in the QDQ model")
    comp.add_argument("--epochs", type=int, default=None,
                      help="epochs of every training stage: recovery fine-tuning (scales a gradual schedule) and QAT")
    comp.add_argument("--imgsz", type=int, default=None, help="fine-tuning image size (default: the recipe's)")
    comp.add_argument("--batch", type=positive_int, default=None, help="fine-tuning batch size")
    comp.add_argument("--max-frames", type=positive_int, default=200, help="frames used for pseudo-labels")
    comp.add_argument("--judge", type=Path, default=None, metavar="YAML",
                      help="the data YAML that will judge the result: refuse any learning input (--data, --calib, "
                           "--pseudo-labels, --bn-recalibration) that shares an image with its val split")
    comp.add_argument("--json", type=Path, metavar="PATH", help="also write the compression record here")
    comp.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (model.pt, sparsity.json)")


def run(args: argparse.Namespace) -> int:
    """Run `posebench compress`; returns the exit status."""
    from rich.console import Console
    from rich.table import Table

    from posebench.compress.recipe import Recipe
    from posebench.compress.run import CompressOptions, compress
    from posebench.machine.environment import fingerprint
    from posebench.models import resolve_model
    from posebench.results import write_json

    if args.epochs is not None and args.epochs < 0:
        raise InvalidInputError(f"--epochs must be >= 0, got {args.epochs}")
    if args.imgsz is not None and (args.imgsz < 32 or args.imgsz % 32):
        raise InvalidInputError(f"--imgsz must be a positive multiple of 32, got {args.imgsz}")
    if args.judge is not None:
        from posebench.evaluate.disjoint import check_disjoint

        if not args.judge.is_file():
            raise InvalidInputError(f"--judge {args.judge} does not exist (a data YAML whose val split judges the model)")
        for what, learn in (("--data", args.data), ("--calib", args.calib), ("--pseudo-labels", args.pseudo_labels),
                            ("--bn-recalibration", args.bn_recalibration)):
            if learn is not None:
                check_disjoint(learn, args.judge, what=f"{what} ({'fine-tuning' if what == '--data' else 'learning'})")
    recipe = Recipe.load(args.recipe)
    source = resolve_model(args.model)
    options = CompressOptions(data=args.data, pseudo_labels=args.pseudo_labels, bn_recalibration=args.bn_recalibration,
                              epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, max_frames=args.max_frames,
                              calibration=args.calib, target_isa=args.target_isa)
    console = Console(stderr=True)
    summary = compress(source, recipe, args.out, options=options,
                       on_progress=lambda message: console.print(f"[bold]posebench compress:[/bold] {message}"))
    table = Table(title=f"per-layer sparsity of {summary['checkpoint']}", show_lines=False)
    for col in ("parameter", "shape", "sparsity"):
        table.add_column(col, justify="left" if col == "parameter" else "right")
    for row in summary["per_layer"]:
        table.add_row(row["name"], "x".join(map(str, row["shape"])), f"{row['sparsity']:.4f}")
    if summary["per_layer"]:
        Console(width=max(Console().width, 100)).print(table)
    timings = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in summary["timings"].items())
    channels = summary.get("channel_pruning")
    shrink = (f"channel pruning kept {channels['macs_kept']:.1%} of the conv MACs at {channels['imgsz'][0]} and "
              f"{channels['params_after'] / channels['params_before']:.1%} of the parameters; ") if channels else ""
    print(f"{summary['checkpoint']}: {shrink}targeted weights {summary['targeted_sparsity']:.1%} zeros, whole model "
          f"{summary['model_sparsity']:.1%}; {timings}")
    if "bundle" in summary:
        b = summary["bundle"]
        print(f"{b['precision']} bundle in {args.out}: {', '.join(b['artifacts'].values())}; quantized nodes "
              f"{b['quantized_nodes']}, kept in float {b['float_nodes']}. Run it with: posebench bench --model "
              f"{args.out} --imgsz {b['imgsz'][0]},{b['imgsz'][1]} --runtime onnxruntime,openvino,deepsparse")
    if "export" in summary:
        e = summary["export"]
        print(f"Ultralytics' own {e['format']}{' int8' if e['int8'] else ''} export: {e['path']}. Run it with: "
              f"posebench bench --model {e['path']} --runtime {'openvino' if e['format'] == 'openvino' else 'onnxruntime'}")
    if args.json:
        write_json(args.json, [{"kind": "compress", **summary, "environment": fingerprint()}])
    return 0
