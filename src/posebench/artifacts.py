"""Built model artifacts (.pt copy, ONNX, OpenVINO IR), cached and described by a metadata sidecar.

An artifact is built once per (model content, format, imgsz) and reused. Each carries
`<file>.meta.json` beside it (and, for ONNX, the same keys in `metadata_props` under `posebench.`):
source model, imgsz (height, width), keypoint shape, sparsity, precision, input and output shapes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from posebench import __version__
from posebench.errors import InvalidInputError, ModelNotFoundError, RuntimeNotInstalledError, RuntimeUnavailableError
from posebench.models import (BUNDLE_FILE, ModelSource, describe, export_onnx, export_openvino,
                              materialize_checkpoint)

FORMATS = ("pt", "onnx", "openvino")
DEFAULT_CACHE = Path.home() / ".cache" / "posebench" / "artifacts"


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


def _onnx_io(path: Path) -> tuple[list[int], list[list[int]], list[str]]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return dims(model.graph.input[0]), [dims(o) for o in model.graph.output], [o.name for o in model.graph.output]


def onnx_weight_sparsity(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Zeros and size of every Conv/Gemm/MatMul weight initializer of an ONNX file, by name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    # in a QDQ model a weight reaches its Conv through DequantizeLinear(int8 initializer)
    dequantized = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    out = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        name = dequantized.get(node.input[1], node.input[1])
        if name in inits:
            w = numpy_helper.to_array(inits[name])
            key = name[: -len("_quantized")] if name.endswith("_quantized") else name
            out[key] = {"size": int(w.size), "zeros": int((w == 0).sum())}
    return out


def _stamp_onnx(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if not p.key.startswith("posebench.")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key in ("source", "source_id", "imgsz", "kpt_shape", "sparsity", "precision", "end2end", "posebench"):
        entry = model.metadata_props.add()
        entry.key, entry.value = f"posebench.{key}", json.dumps(meta[key])
    onnx.save(model, str(path))


class ArtifactStore:
    """Builds and caches artifacts of one model under `cache_dir/<name>-<content id>/`."""

    def __init__(self, source: ModelSource, cache_dir: Path = DEFAULT_CACHE):
        self.source = source
        self.root = Path(cache_dir) / f"{source.name}-{source.identity()}"
        self.bundle = json.loads((source.path / BUNDLE_FILE).read_text()) if source.kind == "bundle" else None

    def describe(self) -> dict[str, Any]:
        """Check the model can be used (loads a checkpoint; finds a bundle's files; reads an imported artifact's
        layout) and return its metadata."""
        if self.source.kind == "artifact":
            return self._imported_meta()
        if self.bundle is not None:
            for fmt, rel in self.bundle.get("artifacts", {}).items():
                if not (self.source.path / rel).is_file():
                    raise ModelNotFoundError(f"{self.source.spec}: its {fmt} artifact {rel} is missing")
            first = next(iter(self.bundle["artifacts"].values()))
            return read_metadata(self.source.path / first)
        return read_metadata(self.checkpoint())

    def checkpoint(self) -> Path:
        """The model as a .pt (YAML architectures are built once, with a fixed seed)."""
        if self.source.kind == "artifact":
            raise RuntimeUnavailableError(f"{self.source.spec} is an exported artifact, not a PyTorch checkpoint: "
                                          "torch cannot run it")
        if self.bundle is not None:
            if not self.bundle.get("checkpoint"):
                raise RuntimeUnavailableError(f"{self.source.spec} holds no PyTorch checkpoint")
            return self.source.path / self.bundle["checkpoint"]
        path = self.root / "model.pt"
        if not path.is_file() or not meta_path(path).is_file():
            tmp = materialize_checkpoint(self.source, self.root / "model.tmp.pt")
            self._describe(tmp, fmt="pt", imgsz=None, meta_for=path)  # loads it: a bad file stops here
            os.replace(tmp, path)
        return path

    def get(self, fmt: str, imgsz: tuple[int, int], accept: tuple[str, ...] = ()) -> Path:
        """Path of the artifact in `fmt` at `imgsz`, building it if needed (`accept`: other formats the runtime
        also takes, e.g. a TensorRT engine)."""
        if self.source.kind == "artifact":
            return self._imported(fmt, imgsz, accept)
        if self.bundle is not None:
            return self._from_bundle(fmt, imgsz)
        if fmt == "pt":
            return self.checkpoint()
        if fmt == "onnx":
            return self._onnx(imgsz)
        if fmt == "openvino":
            return self._openvino(imgsz)
        raise InvalidInputError(f"unknown artifact format '{fmt}'; known: {', '.join(FORMATS)}")

    def _from_bundle(self, fmt: str, imgsz: tuple[int, int]) -> Path:
        """A compressed bundle's artifacts are fixed: right format and size, or a clear refusal."""
        bundle, where = self.bundle, self.source.spec
        if fmt == "pt":
            if bundle.get("precision") != "fp32":
                raise RuntimeUnavailableError(f"{where} is a {bundle.get('precision')} bundle; its PyTorch checkpoint "
                                              "is the fp32 model before quantization, so torch cannot run this variant")
            return self.checkpoint()
        if fmt not in bundle.get("artifacts", {}):
            raise RuntimeUnavailableError(f"{where} has no {fmt} artifact (it has: "
                                          f"{', '.join(bundle.get('artifacts', {})) or 'none'})")
        if list(imgsz) != bundle["imgsz"]:
            raise InvalidInputError(f"{where} was built for imgsz {bundle['imgsz'][0]},{bundle['imgsz'][1]}, not "
                                    f"{imgsz[0]},{imgsz[1]}: use --imgsz {bundle['imgsz'][0]},{bundle['imgsz'][1]} or "
                                    "re-run `posebench compress` with the size you need")
        return self.source.path / bundle["artifacts"][fmt]

    def _imported_meta(self) -> dict[str, Any]:
        from posebench.imported import find_artifact, import_metadata, parse_kpt_shape

        sidecar = self.root / "imported.meta.json"
        if sidecar.is_file():
            return json.loads(sidecar.read_text())
        fmt, path = find_artifact(self.source.path)
        kpt, nc = self.source.option("kpt_shape"), self.source.option("nc")
        meta = {**import_metadata(path, fmt, self.source.spec, parse_kpt_shape(kpt) if kpt else None,
                                  int(nc) if nc else None),
                "source_id": self.source.identity(), "posebench": __version__}
        self.root.mkdir(parents=True, exist_ok=True)
        sidecar.write_text(json.dumps(meta, indent=2, sort_keys=True))
        return meta

    def _imported(self, fmt: str, imgsz: tuple[int, int], accept: tuple[str, ...]) -> Path:
        """An imported artifact is linked (never copied or written beside) into the cache with its metadata; an
        ONNX one also converts to OpenVINO IR. Other formats are a clear refusal (torch, an IR for onnxruntime)."""
        meta = self._imported_meta()
        own = meta["format"]
        where = self.source.spec
        if list(imgsz) != meta["imgsz"]:
            raise InvalidInputError(f"{where} takes {meta['imgsz'][0]},{meta['imgsz'][1]} images, not "
                                    f"{imgsz[0]},{imgsz[1]}: use --imgsz {meta['imgsz'][0]},{meta['imgsz'][1]}")
        if fmt == own or own in accept:
            suffix = self.source.path.suffix
            link = self.root / f"imported{suffix}"
            parts = [(self.source.path, link)]
            if own == "openvino":
                parts.append((self.source.path.with_suffix(".bin"), link.with_suffix(".bin")))
            for target, name in parts:
                if not name.is_symlink() or name.resolve() != target.resolve():
                    name.unlink(missing_ok=True)
                    name.symlink_to(target.resolve())
            write_metadata(link, meta)
            return link
        if own == "onnx" and fmt == "openvino":
            path = self.root / "imported_openvino" / "model.xml"
            if not (path.is_file() and meta_path(path).is_file()):
                import openvino as ov

                try:
                    ir = ov.convert_model(str(self.source.path))
                except Exception as exc:  # the ONNX reader rejects some graphs (YOLO26's end2end gathers)
                    raise RuntimeUnavailableError(f"OpenVINO cannot read {where} ({str(exc).splitlines()[0][:160]}); "
                                                  "export an OpenVINO IR from the model itself") from exc
                path.parent.mkdir(parents=True, exist_ok=True)
                ov.save_model(ir, str(path), compress_to_fp16=False)
                write_metadata(path, {**meta, "format": "openvino", "converted_from": str(self.source.path)})
            return path
        raise RuntimeUnavailableError(f"{where} is an imported {own} artifact; a runtime that needs {fmt} cannot "
                                      "run it")

    def _onnx(self, imgsz: tuple[int, int]) -> Path:
        h, w = imgsz
        path = self.root / f"model-{h}x{w}.onnx"
        if path.is_file() and meta_path(path).is_file():
            return path
        end2end = bool(read_metadata(self.checkpoint()).get("end2end", False))
        written = export_onnx(self.checkpoint(), imgsz=imgsz, end2end=end2end)
        os.replace(written, path)
        meta = self._describe(path, fmt="onnx", imgsz=imgsz)
        _stamp_onnx(path, meta)
        return path

    def _openvino(self, imgsz: tuple[int, int]) -> Path:
        h, w = imgsz
        path = self.root / f"model-{h}x{w}_openvino" / "model.xml"
        if path.is_file() and meta_path(path).is_file():
            return path
        try:
            import openvino as ov
        except ImportError as exc:
            raise RuntimeNotInstalledError("OpenVINO IR export needs openvino: pip install openvino") from exc
        onnx_path = self._onnx(imgsz)
        tmp_dir = path.parent.with_name(path.parent.name + ".tmp")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        end2end = bool(read_metadata(onnx_path).get("end2end", False))
        if end2end:  # converted from torch: see export_openvino
            written = export_openvino(self.checkpoint(), imgsz=imgsz, end2end=True)
            os.replace(written, tmp_dir / "model.xml")
            os.replace(written.with_suffix(".bin"), tmp_dir / "model.bin")
            shutil.rmtree(written.parent, ignore_errors=True)
        else:
            ov.save_model(ov.convert_model(str(onnx_path)), str(tmp_dir / "model.xml"), compress_to_fp16=False)
        shutil.rmtree(path.parent, ignore_errors=True)
        os.replace(tmp_dir, path.parent)
        meta = {**read_metadata(onnx_path), "format": "openvino",
                "converted_from": "torch (Ultralytics' OpenVINO exporter)" if end2end else onnx_path.name}
        write_metadata(path, meta)
        return path

    def _describe(self, path: Path, *, fmt: str, imgsz: tuple[int, int] | None,
                  meta_for: Path | None = None) -> dict[str, Any]:
        summary = describe(self.checkpoint() if fmt != "pt" else path)
        if self.source.head == "end2end" and not summary["one2one_head"]:
            raise InvalidInputError(f"{self.source.spec}: head=end2end, but this model has no one-to-one (NMS-free) "
                                    "head; only YOLO26-style end2end models have one")
        meta: dict[str, Any] = {
            "format": fmt, "source": self.source.spec, "source_name": self.source.name,
            "source_kind": self.source.kind, "source_id": self.source.identity(),
            "imgsz": list(imgsz) if imgsz else None, "kpt_shape": summary["kpt_shape"],
            "names": summary["names"], "parameters": summary["parameters"],
            "sparsity": round(summary["conv_sparsity"], 6), "precision": "fp32", "posebench": __version__,
            "nc": summary["nc"], "end2end": summary["one2one_head"] and self.source.head != "one2many",
        }
        if fmt == "onnx":
            meta["input_shape"], meta["output_shapes"], meta["output_names"] = _onnx_io(path)
            from posebench.evaluate.postprocess import output_layout

            output_layout(tuple(meta["output_shapes"][0]), tuple(meta["kpt_shape"]), meta["end2end"])  # as declared
        write_metadata(meta_for or path, meta)
        return meta
