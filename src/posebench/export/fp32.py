"""posebench's own fp32 exports of a checkpoint: the checkpoint itself (.pt), a static batch-1 ONNX, an OpenVINO IR.

Ultralytics' exporter does the tracing (through the adapter); this module names, describes and checks what it
writes. An end-to-end model (YOLO26) is exported with its one-to-one head unless the source asks for one2many.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from posebench import __version__
from posebench.errors import InvalidInputError, RuntimeNotInstalledError
from posebench.export.artifact import Artifact, onnx_io, read_metadata
from posebench.models import ModelSource
from posebench.ultralytics_adapter import describe, export_onnx, export_openvino


def checkpoint_artifact(source: ModelSource, checkpoint: Path) -> Artifact:
    """Describe a checkpoint as a `pt` artifact (loads it: a bad file stops here)."""
    summary = describe(checkpoint)
    if source.head == "end2end" and not summary["one2one_head"]:
        raise InvalidInputError(f"{source.spec}: head=end2end, but this model has no one-to-one (NMS-free) head; "
                                "only YOLO26-style end2end models have one")
    meta: dict[str, Any] = {
        "format": "pt", "source": source.spec, "source_name": source.name, "source_kind": source.kind,
        "source_id": source.identity(), "imgsz": None, "kpt_shape": summary["kpt_shape"], "names": summary["names"],
        "parameters": summary["parameters"], "sparsity": round(summary["conv_sparsity"], 6), "precision": "fp32",
        "posebench": __version__, "nc": summary["nc"],
        "end2end": summary["one2one_head"] and source.head != "one2many",
    }
    return Artifact(checkpoint, meta)


def export_fp32_onnx(checkpoint: Artifact, dest: Path, imgsz: tuple[int, int]) -> Artifact:
    """Static batch-1 fp32 ONNX of the checkpoint at `imgsz`, written to `dest` with its metadata."""
    from posebench.export.layout import output_layout

    written = export_onnx(checkpoint.path, imgsz=imgsz, end2end=bool(checkpoint.meta["end2end"]))
    os.replace(written, dest)
    meta = {**checkpoint.meta, "format": "onnx", "imgsz": list(imgsz)}
    meta["input_shape"], meta["output_shapes"], meta["output_names"] = onnx_io(dest)
    output_layout(tuple(meta["output_shapes"][0]), tuple(meta["kpt_shape"]), meta["end2end"])  # as declared
    return Artifact(dest, meta).save()


TORCH_CONVERTED = "torch (Ultralytics' OpenVINO exporter)"


def export_fp32_openvino(checkpoint: Artifact, onnx: Artifact, dest: Path) -> Artifact:
    """fp32 OpenVINO IR (`dest` = .../model.xml), straight from torch by Ultralytics' exporter (what `yolo export
    format=openvino` writes), not from the ONNX export: OpenVINO's PyTorch frontend keeps each SiLU one Swish op and
    leaves no shape sub-graphs, so NNCF's int8 puts 106 quantizers on yolo11n-pose instead of 267 and the int8 IR
    runs 1.2x faster at the same accuracy (measured, AMD EPYC AVX2); OpenVINO's ONNX reader also rejects an
    end-to-end head's top-k gathers. The IR's outputs are checked against the ONNX export's by the tests."""
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        raise RuntimeNotInstalledError("OpenVINO IR export needs openvino: pip install openvino") from exc
    imgsz = onnx.imgsz
    tmp_dir = dest.parent.with_name(dest.parent.name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    written = export_openvino(checkpoint.path, imgsz=imgsz, end2end=bool(onnx.meta.get("end2end")))
    os.replace(written, tmp_dir / "model.xml")
    os.replace(written.with_suffix(".bin"), tmp_dir / "model.bin")
    shutil.rmtree(written.parent, ignore_errors=True)
    shutil.rmtree(dest.parent, ignore_errors=True)
    os.replace(tmp_dir, dest.parent)
    meta = {**read_metadata(onnx.path), "format": "openvino", "converted_from": TORCH_CONVERTED}
    return Artifact(dest, meta).save()
