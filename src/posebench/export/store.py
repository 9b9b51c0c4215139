"""The artifacts of one model, by format and input size, built on demand and cached.

`ArtifactStore(source)` picks, once, where the source's artifacts come from:
- `BuiltArtifacts`: a checkpoint or an architecture YAML; posebench exports each (format, imgsz) once into
  `cache_dir/<name>-<content id>/` (see `posebench.export.fp32`);
- `BundleArtifacts`: a `posebench compress` folder; its artifacts are fixed (right format and size, or a refusal);
- `ImportedArtifacts`: an ONNX / OpenVINO IR / TensorRT engine made elsewhere, linked into the cache with the
  metadata read from it (an ONNX one also converts to an OpenVINO IR).
Every `artifact()` is an `Artifact` (path + metadata); `get()` is its path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from posebench import __version__
from posebench.errors import InvalidInputError, ModelNotFoundError, RuntimeUnavailableError
from posebench.export.artifact import DEFAULT_CACHE, FORMATS, Artifact, meta_path, onnx_to_openvino, write_metadata
from posebench.models import ModelSource, materialize_checkpoint


class BuiltArtifacts:
    """A checkpoint or YAML: every format exported by posebench, once per size."""

    def __init__(self, source: ModelSource, root: Path):
        self.source, self.root = source, root

    def describe(self) -> dict[str, Any]:
        return self.checkpoint().meta

    def fixed_imgsz(self) -> None:
        return None

    def checkpoint(self) -> Artifact:
        """The model as a .pt (YAML architectures are built once, with a fixed seed)."""
        from posebench.export.fp32 import checkpoint_artifact

        path = self.root / "model.pt"
        if path.is_file() and meta_path(path).is_file():
            cached = Artifact.load(path)
            if "end2end" in cached.meta:  # written by an older posebench without it: made again below
                return cached
        tmp = materialize_checkpoint(self.source, self.root / "model.tmp.pt")
        meta = checkpoint_artifact(self.source, tmp).meta  # loads it: a bad file stops here
        os.replace(tmp, path)
        return Artifact(path, meta).save()

    def artifact(self, fmt: str, imgsz: tuple[int, int], accept: tuple[str, ...] = (),
                 prefer: tuple[str, ...] = ()) -> Artifact:
        from posebench.export.fp32 import TORCH_CONVERTED, export_fp32_onnx, export_fp32_openvino

        if fmt == "pt":
            return self.checkpoint()
        h, w = imgsz
        onnx_path = self.root / f"model-{h}x{w}.onnx"
        onnx = (Artifact.load(onnx_path) if onnx_path.is_file() and meta_path(onnx_path).is_file()
                else export_fp32_onnx(self.checkpoint(), onnx_path, imgsz))
        if fmt == "onnx":
            return onnx
        if fmt == "openvino":
            xml = self.root / f"model-{h}x{w}_openvino" / "model.xml"
            if xml.is_file() and meta_path(xml).is_file():
                cached = Artifact.load(xml)
                if cached.meta.get("converted_from") == TORCH_CONVERTED:  # older caches: converted from the ONNX
                    return cached
            return export_fp32_openvino(self.checkpoint(), onnx, xml)
        raise InvalidInputError(f"unknown artifact format '{fmt}'; known: {', '.join(FORMATS)}")


class BundleArtifacts:
    """A compressed bundle: fixed artifacts at one size, and the float checkpoint they came from."""

    def __init__(self, source: ModelSource, root: Path):
        from posebench.export.bundle import read_bundle

        self.source, self.root = source, root
        self.bundle = read_bundle(source.path)

    def describe(self) -> dict[str, Any]:
        from posebench.export.bundle import bundle_artifacts

        return next(iter(bundle_artifacts(self.source.path, self.bundle).values())).meta

    def fixed_imgsz(self) -> tuple[int, int]:
        return tuple(self.bundle["imgsz"])

    def checkpoint(self) -> Artifact:
        if not self.bundle.get("checkpoint"):
            raise RuntimeUnavailableError(f"{self.source.spec} holds no PyTorch checkpoint")
        return Artifact.load(self.source.path / self.bundle["checkpoint"])

    def artifact(self, fmt: str, imgsz: tuple[int, int], accept: tuple[str, ...] = (),
                 prefer: tuple[str, ...] = ()) -> Artifact:
        bundle, where = self.bundle, self.source.spec
        if fmt == "pt":
            if bundle.get("precision") != "fp32":
                raise RuntimeUnavailableError(f"{where} is a {bundle.get('precision')} bundle; its PyTorch checkpoint "
                                              "is the fp32 model before quantization, so torch cannot run this variant")
            return self.checkpoint()
        fmt = next((form for form in prefer if form in bundle.get("artifacts", {})), fmt)
        if fmt not in bundle.get("artifacts", {}):
            raise RuntimeUnavailableError(f"{where} has no {fmt} artifact (it has: "
                                          f"{', '.join(bundle.get('artifacts', {})) or 'none'})")
        if list(imgsz) != bundle["imgsz"]:
            raise InvalidInputError(f"{where} was built for imgsz {bundle['imgsz'][0]},{bundle['imgsz'][1]}, not "
                                    f"{imgsz[0]},{imgsz[1]}: use --imgsz {bundle['imgsz'][0]},{bundle['imgsz'][1]} or "
                                    "re-run `posebench compress` with the size you need")
        path = self.source.path / bundle["artifacts"][fmt]
        if not path.is_file():
            raise ModelNotFoundError(f"{where}: its {fmt} artifact {bundle['artifacts'][fmt]} is missing")
        return Artifact.load(path)


class ImportedArtifacts:
    """An artifact made elsewhere: linked (never copied or written beside) into the cache with its metadata; an
    ONNX one also converts to OpenVINO IR. Other formats are a clear refusal (torch, an IR for onnxruntime)."""

    def __init__(self, source: ModelSource, root: Path):
        self.source, self.root = source, root

    def describe(self) -> dict[str, Any]:
        from posebench.export.imported import find_artifact, import_metadata, parse_kpt_shape

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

    def fixed_imgsz(self) -> tuple[int, int]:
        return tuple(self.describe()["imgsz"])

    def checkpoint(self) -> Artifact:
        raise RuntimeUnavailableError(f"{self.source.spec} is an exported artifact, not a PyTorch checkpoint: "
                                      "torch cannot run it")

    def artifact(self, fmt: str, imgsz: tuple[int, int], accept: tuple[str, ...] = (),
                 prefer: tuple[str, ...] = ()) -> Artifact:
        meta = self.describe()
        own, where = meta["format"], self.source.spec
        if list(imgsz) != meta["imgsz"]:
            raise InvalidInputError(f"{where} takes {meta['imgsz'][0]},{meta['imgsz'][1]} images, not "
                                    f"{imgsz[0]},{imgsz[1]}: use --imgsz {meta['imgsz'][0]},{meta['imgsz'][1]}")
        if fmt == own or own in accept:
            link = self.root / f"imported{self.source.path.suffix}"
            parts = [(self.source.path, link)]
            if own == "openvino":
                parts.append((self.source.path.with_suffix(".bin"), link.with_suffix(".bin")))
            for target, name in parts:
                if not name.is_symlink() or name.resolve() != target.resolve():
                    name.unlink(missing_ok=True)
                    name.symlink_to(target.resolve())
            return Artifact(link, meta).save()
        if own == "onnx" and fmt == "openvino":
            path = self.root / "imported_openvino" / "model.xml"
            if not (path.is_file() and meta_path(path).is_file()):
                try:
                    onnx_to_openvino(self.source.path, path)
                except Exception as exc:  # OpenVINO's reader rejects some graphs
                    raise RuntimeUnavailableError(f"OpenVINO cannot read {where} ({str(exc).splitlines()[0][:160]}); "
                                                  "export an OpenVINO IR from the model itself") from exc
                write_metadata(path, {**meta, "format": "openvino", "converted_from": str(self.source.path)})
            return Artifact.load(path)
        raise RuntimeUnavailableError(f"{where} is an imported {own} artifact; a runtime that needs {fmt} cannot "
                                      "run it")


PROVIDERS = {"checkpoint": BuiltArtifacts, "yaml": BuiltArtifacts, "bundle": BundleArtifacts,
             "artifact": ImportedArtifacts}


class ArtifactStore:
    """The artifacts of one model under `cache_dir/<name>-<content id>/` (see the module doc)."""

    def __init__(self, source: ModelSource, cache_dir: Path = DEFAULT_CACHE):
        self.source = source
        self.root = Path(cache_dir) / f"{source.name}-{source.identity()}"
        self._provider = PROVIDERS[source.kind](source, self.root)

    def describe(self) -> dict[str, Any]:
        """Check the model can be used (loads a checkpoint; finds a bundle's files; reads an imported artifact's
        layout) and return its metadata."""
        return self._provider.describe()

    def fixed_imgsz(self) -> tuple[int, int] | None:
        """The one input size the model's artifacts take (a bundle, an imported artifact); None: any size."""
        return self._provider.fixed_imgsz()

    def checkpoint(self) -> Path:
        """The model as a PyTorch checkpoint (a clear refusal where there is none)."""
        return self._provider.checkpoint().path

    def artifact(self, fmt: str, imgsz: tuple[int, int], accept: tuple[str, ...] = (),
                 prefer: tuple[str, ...] = ()) -> Artifact:
        """The artifact in `fmt` at `imgsz`, built if needed (`accept`: other formats the runtime also takes, e.g.
        a TensorRT engine; `prefer`: a bundle's runtime-specific forms taken first, e.g. "deepsparse")."""
        return self._provider.artifact(fmt, imgsz, accept, prefer)

    def get(self, fmt: str, imgsz: tuple[int, int], accept: tuple[str, ...] = (),
            prefer: tuple[str, ...] = ()) -> Path:
        """Path of `artifact(fmt, imgsz, accept, prefer)`."""
        return self.artifact(fmt, imgsz, accept, prefer).path
