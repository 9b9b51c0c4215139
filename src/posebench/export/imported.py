"""Artifacts made elsewhere: an ONNX file, an OpenVINO IR (or Ultralytics' `*_openvino_model/` folder), a
TensorRT engine.

Their pose layout is read from the artifact's own metadata: posebench's `posebench.*` ONNX props, else
Ultralytics' (ONNX `metadata_props`, `metadata.yaml` beside an IR, the JSON header of its `.engine` files).
Without metadata it comes from the input and output shapes and the keypoint shape the user gives
(`--kpt-shape K,D`, or `model.onnx[kpt_shape=17x3]`). The declared layout is checked against the output shape:
a contradiction is an error, never a silent guess.
"""

from __future__ import annotations

import ast
import json
import struct
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError, ModelLoadError

SUFFIX_FORMATS = {".onnx": "onnx", ".xml": "openvino", ".engine": "engine", ".plan": "engine"}


def find_artifact(path: Path) -> tuple[str, Path] | None:
    """(format, file) of an artifact made elsewhere, or None. A folder qualifies when it holds exactly one IR
    (.xml), as the folders `yolo export format=openvino` writes."""
    if path.is_dir():
        xmls = sorted(path.glob("*.xml"))
        return ("openvino", xmls[0]) if len(xmls) == 1 else None
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    return (fmt, path) if fmt and path.is_file() else None


def parse_kpt_shape(text: str | list[int] | tuple[int, ...]) -> tuple[int, int]:
    """'17,3' / '17x3' / [17, 3] -> (17, 3): K keypoints of D values (2: x, y; 3: x, y, visibility)."""
    parts = text if isinstance(text, (list, tuple)) else str(text).lower().replace("x", ",").split(",")
    try:
        k, d = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise InvalidInputError(f"kpt_shape must be K,D (e.g. 17,3), got {text!r}") from None
    if k < 1 or d not in (2, 3):
        raise InvalidInputError(f"kpt_shape {k},{d}: need K >= 1 keypoints of D = 2 or 3 values")
    return k, d


def _literal(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _read(path: Path, fmt: str) -> Any:
    """The artifact's model, read once (ONNX graph without external data, or OpenVINO model); None for an engine."""
    if fmt == "onnx":
        import onnx

        return onnx.load(str(path), load_external_data=False)
    if fmt == "openvino":
        import openvino as ov

        return ov.Core().read_model(str(path))
    return None


def embedded_metadata(path: Path, fmt: str, model: Any) -> tuple[dict[str, Any], str]:
    """The metadata an artifact carries, and who wrote it ('posebench', 'ultralytics' or 'none')."""
    if fmt == "onnx":
        props = {p.key: p.value for p in model.metadata_props}
        ours = {k[len("posebench."):]: json.loads(v) for k, v in props.items() if k.startswith("posebench.")}
        theirs = {k: _literal(v) for k, v in props.items() if not k.startswith("posebench.")}
        if ours.get("kpt_shape"):
            return {**theirs, **ours}, "posebench"
        return theirs, "ultralytics" if theirs.get("kpt_shape") or theirs.get("task") else "none"
    if fmt == "openvino":
        import yaml

        sidecar = path.parent / "metadata.yaml"
        if sidecar.is_file():
            return {k: _literal(v) for k, v in (yaml.safe_load(sidecar.read_text()) or {}).items()}, "ultralytics"
        return {}, "none"
    with open(path, "rb") as fh:  # Ultralytics' engines: int32 length, JSON metadata, then the engine
        head = fh.read(4)
        if len(head) == 4:
            size = struct.unpack("<i", head)[0]
            if 0 < size < 1 << 20:
                try:
                    return json.loads(fh.read(size).decode("utf-8")), "ultralytics"
                except (UnicodeDecodeError, json.JSONDecodeError):
                    pass
    return {}, "none"


def io_shapes(fmt: str, model: Any) -> tuple[list[int] | None, list[list[int]] | None]:
    """Static input and output shapes (0 or -1 for a dynamic dimension); None where they cannot be read here."""
    if fmt == "onnx":
        dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
        return dims(model.graph.input[0]), [dims(o) for o in model.graph.output]
    if fmt == "openvino":
        shape = lambda p: [d.get_length() if d.is_static else -1 for d in p]  # noqa: E731
        return shape(model.inputs[0].get_partial_shape()), [shape(o.get_partial_shape()) for o in model.outputs]
    return None, None  # a TensorRT engine is opened only on a GPU machine


def precision_of(fmt: str, model: Any, meta: dict[str, Any]) -> str:
    """int8, fp16 or fp32: from the exporter's arguments when recorded, else from the graph's operators."""
    args = meta.get("args") or {}
    if meta.get("precision"):
        return str(meta["precision"])
    if args.get("int8") or args.get("quantize") == 8:
        return "int8"
    if args.get("half") or args.get("quantize") == 16:
        return "fp16"
    if fmt == "onnx":
        import onnx

        ops = {n.op_type for n in model.graph.node}
        if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}:
            return "int8"
        if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
            return "fp16"
    if fmt == "openvino" and any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()):
        return "int8"
    return "fp32"


def import_metadata(path: Path, fmt: str, spec: str, kpt_shape: tuple[int, int] | None = None,
                    nc: int | None = None) -> dict[str, Any]:
    """posebench's artifact metadata for a file made elsewhere (see the module doc for where each key comes from).
    Without metadata the class count is `nc` (default 1, person): the output shape must then fit exactly."""
    from posebench.export.layout import output_layout

    try:
        model = _read(path, fmt)
        meta, writer = embedded_metadata(path, fmt, model)
        input_shape, output_shapes = io_shapes(fmt, model)
    except InvalidInputError:
        raise
    except Exception as exc:  # a truncated or foreign file: each reader raises its own types
        raise ModelLoadError(f"{spec}: cannot read it as {fmt} ({type(exc).__name__}: {exc})") from exc
    task = meta.get("task")
    if task not in (None, "pose"):
        raise InvalidInputError(f"{spec} is a '{task}' model, not a pose model: posebench needs a pose model")
    declared = parse_kpt_shape(meta["kpt_shape"]) if meta.get("kpt_shape") else None
    if kpt_shape and declared and tuple(kpt_shape) != declared:
        raise InvalidInputError(f"{spec}: --kpt-shape {kpt_shape[0]},{kpt_shape[1]} contradicts its own metadata "
                                f"({declared[0]},{declared[1]}); leave --kpt-shape out")
    shape = tuple(kpt_shape or declared or ())
    if not shape:
        raise InvalidInputError(f"{spec} carries no pose metadata (no kpt_shape): give --kpt-shape K,D "
                                "(17,3 for COCO persons) so its output can be decoded")
    if input_shape and len(input_shape) == 4 and all(d > 0 for d in input_shape[2:]):
        imgsz = [int(input_shape[2]), int(input_shape[3])]
    elif meta.get("imgsz"):
        imgsz = [int(v) for v in (meta["imgsz"] if isinstance(meta["imgsz"], (list, tuple)) else [meta["imgsz"]] * 2)]
    else:
        raise InvalidInputError(f"{spec} has a dynamic input size and no recorded imgsz: export it with a fixed size")
    end2end = meta.get("end2end")
    out = output_shapes[0] if output_shapes else None
    if out and all(d > 0 for d in out):
        end2end = output_layout(tuple(out), shape, None if end2end is None else bool(end2end)) == "end2end"
    names = meta.get("names") or {}
    names = {str(k): v for k, v in (names.items() if isinstance(names, dict) else enumerate(names))}
    implied = out[1] - 4 - shape[0] * shape[1] if out and not end2end and out[1] > 0 else None
    if not names:  # no metadata: the user's keypoint shape and class count must explain the output exactly
        expected = nc or 1
        if implied is not None and implied != expected:
            raise InvalidInputError(f"{spec}: its output {tuple(out)} with kpt_shape {shape[0]},{shape[1]} implies "
                                    f"{implied} classes, not {expected}: the keypoint shape does not fit (a model "
                                    f"with more classes: '{spec}[kpt_shape={shape[0]}x{shape[1]},nc={implied}]')")
        names = {str(i): "person" if expected == 1 else str(i) for i in range(expected)}
    nc = len(names)
    result = {"format": fmt, "source": spec, "source_name": path.stem, "source_kind": "artifact",
              "metadata_from": writer if writer != "none" else "shapes + --kpt-shape",
              "imgsz": imgsz, "kpt_shape": list(shape), "names": names, "nc": nc, "end2end": bool(end2end),
              "precision": precision_of(fmt, model, meta), "input_shape": input_shape, "output_shapes": output_shapes,
              "sparsity": _sparsity(path) if fmt == "onnx" else None, "exported_by": meta.get("version")}
    if meta.get("quantization"):
        result["quantization"] = meta["quantization"]
    return result


def _sparsity(path: Path) -> float | None:
    from posebench.export.artifact import onnx_weight_sparsity

    weights = onnx_weight_sparsity(path).values()
    total = sum(w["size"] for w in weights)
    return round(sum(w["zeros"] for w in weights) / total, 6) if total else None
