"""Reduced-precision artifacts made from posebench's fp32 exports: int8 PTQ, fp16, and the export of a QAT-trained
model. Each returns the artifacts it wrote (ONNX and OpenVINO IR; for int8 also the ONNX in DeepSparse's ConvInteger
form, `form: deepsparse`); their metadata inherit the fp32 export's (source, keypoint shape, end2end, sparsity) and
add precision and how they were quantized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posebench.export.artifact import Artifact, onnx_to_openvino


def _derived(fp32: Artifact, path: Path, *, fmt: str, precision: str, quantization: dict[str, Any] | None,
             origin: Path, form: str | None = None) -> Artifact:
    meta = {**fp32.meta, "format": fmt, "precision": precision, "converted_from": str(origin)}
    meta.pop("form", None)
    if form:
        meta["form"] = form
    if quantization is not None:
        meta["quantization"] = quantization
    else:
        meta.pop("quantization", None)
    return Artifact(path, meta).save()


def deepsparse_int8(qdq: Artifact, out_dir: Path) -> tuple[Artifact, ...]:
    """The QDQ ONNX rewritten into the form DeepSparse accelerates (`posebench.export.deepsparse_form`), as a
    one-artifact tuple; empty when the graph holds no convolution it can convert (DeepSparse then runs the QDQ)."""
    from posebench.errors import InvalidInputError
    from posebench.export.deepsparse_form import to_deepsparse_int8

    out = out_dir / "model-int8-deepsparse.onnx"
    try:
        info = to_deepsparse_int8(qdq.path, out)
    except InvalidInputError:
        return ()
    quantization = {**qdq.meta.get("quantization", {}), "deepsparse_form": info}
    return (_derived(qdq, out, fmt="onnx", precision="int8", quantization=quantization, origin=qdq.path,
                     form="deepsparse"),)


def ptq_int8(fp32_onnx: Artifact, fp32_ir: Artifact, out_dir: Path, batches: list[np.ndarray], config: Any,
             settings: dict[str, Any]) -> tuple[Artifact, ...]:
    """Int8 PTQ of both fp32 artifacts with one config and one calibration set: QDQ ONNX (ONNX Runtime's
    `quantize_static`) and an OpenVINO IR (NNCF). `settings` (method, calibration, target) go into both."""
    from posebench.compress.quantize import quantize_onnx, quantize_openvino

    onnx_out, xml_out = out_dir / "model-int8.onnx", out_dir / "model-int8_openvino" / "model.xml"
    onnx_info = quantize_onnx(fp32_onnx.path, onnx_out, batches, config)
    ir_info = quantize_openvino(fp32_ir.path, xml_out, batches, config)
    qdq = _derived(fp32_onnx, onnx_out, fmt="onnx", precision="int8", quantization={**settings, **onnx_info},
                   origin=fp32_onnx.path)
    return (qdq, _derived(fp32_onnx, xml_out, fmt="openvino", precision="int8", quantization={**settings, **ir_info},
                          origin=fp32_ir.path), *deepsparse_int8(qdq, out_dir))


def fp16(fp32_onnx: Artifact, fp32_ir: Artifact, out_dir: Path) -> tuple[Artifact, Artifact]:
    """fp16 weights: ONNX converted with float32 inputs and outputs kept, OpenVINO IR compressed to fp16."""
    import openvino as ov

    from posebench.compress.quantize import onnx_to_fp16

    onnx_out, xml_out = out_dir / "model-fp16.onnx", out_dir / "model-fp16_openvino" / "model.xml"
    onnx_to_fp16(fp32_onnx.path, onnx_out)
    xml_out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.Core().read_model(str(fp32_ir.path)), str(xml_out), compress_to_fp16=True)
    return (_derived(fp32_onnx, onnx_out, fmt="onnx", precision="fp16", quantization={}, origin=fp32_onnx.path),
            _derived(fp32_onnx, xml_out, fmt="openvino", precision="fp16", quantization={}, origin=fp32_ir.path))


def qat_int8(trained: Any, fp32_onnx: Artifact, out_dir: Path, check: np.ndarray, *, end2end: bool,
             float_nodes: list[str], tool: str, settings: dict[str, Any]) -> tuple[Artifact, ...]:
    """Export a QAT-trained (fake-quantized) model: QDQ ONNX checked against the model (see
    `posebench.compress.qat.export_qat_onnx`), and the OpenVINO IR read from it (QDQ pairs become FakeQuantize
    with the same int8 scales). `fp32_onnx` is the fp32 export of the trained float weights (metadata)."""
    from posebench.compress.qat import export_qat_onnx
    from posebench.compress.quantize import openvino_quantized_nodes

    onnx_out, xml_out = out_dir / "model-int8.onnx", out_dir / "model-int8_openvino" / "model.xml"
    exported = export_qat_onnx(trained, onnx_out, check, end2end=end2end)
    onnx_to_openvino(onnx_out, xml_out)
    import openvino as ov

    ir_nodes = openvino_quantized_nodes(ov.Core().read_model(str(xml_out)))
    onnx_info = {"quantized_nodes": exported["quantized_nodes"], "float_nodes": float_nodes, "tool": tool,
                 "export_check": exported["export_check"]}
    ir_info = {"quantized_nodes": ir_nodes, "float_nodes": float_nodes, "tool": f"{tool}, QDQ ONNX read by OpenVINO"}
    qdq = _derived(fp32_onnx, onnx_out, fmt="onnx", precision="int8", quantization={**settings, **onnx_info},
                   origin=fp32_onnx.path)
    return (qdq, _derived(fp32_onnx, xml_out, fmt="openvino", precision="int8", quantization={**settings, **ir_info},
                          origin=onnx_out), *deepsparse_int8(qdq, out_dir))
