"""The one artifact type: a model file (ONNX, OpenVINO IR, PyTorch checkpoint, TensorRT engine) and its metadata.

Every artifact carries `<file>.meta.json` beside it (an ONNX one also the same keys in `metadata_props` under
`posebench.`): source model, imgsz (height, width), keypoint shape, class names, end2end, sparsity, precision,
input and output shapes, and for int8 how it was quantized. Whatever made it (posebench's fp32 export, PTQ, QAT,
fp16, Ultralytics' exporter, a user's own file), the runtimes, validator and reports read only this.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError, ModelNotFoundError

FORMATS = ("pt", "onnx", "openvino")  # what posebench builds; an imported TensorRT engine is format "engine"
DEFAULT_CACHE = Path.home() / ".cache" / "posebench" / "artifacts"
STAMPED_KEYS = ("source", "source_id", "imgsz", "kpt_shape", "sparsity", "precision", "end2end", "posebench")


@dataclass(frozen=True)
class Artifact:
    """A model file and its metadata (`meta`, as in its sidecar)."""

    path: Path
    meta: dict[str, Any]

    @property
    def format(self) -> str:
        return str(self.meta["format"])

    @property
    def precision(self) -> str:
        return str(self.meta.get("precision") or "fp32")

    @property
    def imgsz(self) -> tuple[int, int] | None:
        return tuple(self.meta["imgsz"]) if self.meta.get("imgsz") else None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Artifact:
        """An artifact posebench wrote (its sidecar must exist)."""
        return cls(Path(path), read_metadata(path))

    def save(self) -> Artifact:
        """Write the sidecar (and, for ONNX, the `posebench.*` metadata props); returns self."""
        if self.format == "onnx" and self.path.suffix == ".onnx" and not self.path.is_symlink():
            stamp_onnx(self.path, self.meta)
        write_metadata(self.path, self.meta)
        return self


def parse_imgsz(text: str | int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """'640' -> (640, 640); '384,640' or '384x640' -> (384, 640). Each side a positive multiple of 32."""
    if isinstance(text, int):
        sides = [text]
    elif isinstance(text, (tuple, list)):
        sides = list(text)
    else:
        parts = str(text).lower().replace("x", ",").split(",")
        try:
            sides = [int(p) for p in parts if p.strip()]
        except ValueError:
            raise InvalidInputError(f"imgsz must be a number or HEIGHT,WIDTH (e.g. 640 or 384,640), got '{text}'")
    if len(sides) == 1:
        sides = sides * 2
    if len(sides) != 2 or any(s <= 0 or s % 32 for s in sides):
        raise InvalidInputError(f"imgsz must be positive multiples of 32 (the model's largest stride), got {text!r}; "
                                f"try {', '.join(str(max(32, round(s / 32) * 32)) for s in sides[:2])}")
    return int(sides[0]), int(sides[1])


def meta_path(artifact: Path) -> Path:
    return Path(f"{artifact}.meta.json")


def read_metadata(artifact: str | os.PathLike) -> dict[str, Any]:
    """The sidecar metadata of an artifact built by posebench."""
    path = meta_path(Path(artifact))
    if not path.is_file():
        raise ModelNotFoundError(f"{artifact} has no posebench metadata ({path.name}); build it with posebench")
    return json.loads(path.read_text())


def write_metadata(artifact: Path, meta: dict[str, Any]) -> None:
    tmp = meta_path(artifact).with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp, meta_path(artifact))


def onnx_io(path: Path) -> tuple[list[int], list[list[int]], list[str]]:
    """Input shape, output shapes and output names of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return dims(model.graph.input[0]), [dims(o) for o in model.graph.output], [o.name for o in model.graph.output]


def onnx_weight_sparsity(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Zeros and size of every Conv/Gemm/MatMul (and ConvInteger/MatMulInteger) weight initializer of an ONNX file,
    by name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    # in a QDQ model a weight reaches its Conv through DequantizeLinear(int8 initializer)
    dequantized = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    out = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul", "ConvInteger", "MatMulInteger") or len(node.input) < 2:
            continue
        name = dequantized.get(node.input[1], node.input[1])
        if name in inits:
            w = numpy_helper.to_array(inits[name])
            key = name[: -len("_quantized")] if name.endswith("_quantized") else name
            out[key] = {"size": int(w.size), "zeros": int((w == 0).sum())}
    return out


def stamp_onnx(path: Path, meta: dict[str, Any]) -> None:
    """Write the metadata's identifying keys into the ONNX file's `metadata_props` (as `posebench.<key>`)."""
    import onnx

    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if not p.key.startswith("posebench.")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key in STAMPED_KEYS:
        if key in meta:
            entry = model.metadata_props.add()
            entry.key, entry.value = f"posebench.{key}", json.dumps(meta[key])
    onnx.save(model, str(path))


def openvino_readable_onnx(model: Any) -> int:
    """Make an ONNX graph's GatherElements acceptable to OpenVINO, in place; returns how many were changed.

    YOLO26's NMS-free top-k gathers from column slices of one tensor (`GatherElements(Slice(x)[..., 0:4], index)`).
    OpenVINO 2026's CPU plugin folds such a Slice into the gather and then fails its own shape check (data
    [1, A, 56] against index [1, k, 4]). A `Max(slice, -inf)` between them computes the same values and is not
    folded, so the graph compiles. (The fp32 IR of an end-to-end model is converted from torch instead, where this
    does not arise; QAT's QDQ graph and imported end-to-end ONNX files take this path.)"""
    import numpy as np
    from onnx import helper, numpy_helper

    producers = {out: node for node in model.graph.node for out in node.output}
    changed = 0
    for node in list(model.graph.node):
        source = producers.get(node.input[0]) if node.op_type == "GatherElements" else None
        if source is None or source.op_type != "Slice":
            continue
        guard = f"{node.input[0]}/openvino_guard"
        model.graph.initializer.append(numpy_helper.from_array(np.array([-np.inf], dtype=np.float32), guard + "/min"))
        position = list(model.graph.node).index(node)
        model.graph.node.insert(position, helper.make_node("Max", [node.input[0], guard + "/min"], [guard], name=guard))
        node.input[0] = guard
        changed += 1
    return changed


def onnx_to_openvino(onnx_path: Path, xml_path: Path, *, compress_to_fp16: bool = False) -> Path:
    """Convert an ONNX file to an OpenVINO IR (weights kept fp32 unless asked; an end-to-end head's top-k made
    readable, see `openvino_readable_onnx`); QDQ pairs become FakeQuantize with the same int8 scales."""
    import tempfile

    import onnx
    import openvino as ov

    model = onnx.load(str(onnx_path))
    with tempfile.TemporaryDirectory() as tmp:
        source = onnx_path
        if openvino_readable_onnx(model):
            source = Path(tmp) / onnx_path.name
            onnx.save(model, str(source))
        ir = ov.Core().read_model(str(source))
        xml_path.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(ir, str(xml_path), compress_to_fp16=compress_to_fp16)
    return xml_path
