"""A bundle: the folder `posebench compress` writes for a reduced-precision variant, a set of artifacts of one model
at one input size (an ONNX and an OpenVINO IR, and the float checkpoint they came from), described by bundle.json.
`bench`, `val` and studies take the folder as `--model`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from posebench.errors import ModelNotFoundError
from posebench.export.artifact import Artifact
from posebench.models import BUNDLE_FILE, file_sha256


def write_bundle(out_dir: Path, artifacts: tuple[Artifact, ...], *, name: str, variant: str, method: str | None,
                 checkpoint: Path, recipe: dict[str, Any]) -> dict[str, Any]:
    """Describe `artifacts` (all in `out_dir`, one per format or runtime-specific form, same precision and size) in
    OUT/bundle.json, keyed by form ("deepsparse") or else format."""
    first = artifacts[0]
    key = lambda a: a.meta.get("form") or a.format  # noqa: E731
    quantization = {key(a): a.meta.get("quantization") or {} for a in artifacts}
    weights = lambda a: a.path.with_suffix(".bin") if a.format == "openvino" else a.path  # noqa: E731
    bundle = {"name": name, "variant": variant, "precision": first.precision, "method": method,
              "imgsz": [int(v) for v in first.imgsz], "checkpoint": checkpoint.name,
              "artifacts": {key(a): str(a.path.relative_to(out_dir)) for a in artifacts},
              "sha256": {key(a): file_sha256(weights(a)) for a in artifacts},
              "sparsity": first.meta.get("sparsity"), "recipe": recipe,
              "int8_target": quantization[first.format].get("int8_target"),
              "quantized_nodes": {f: len(q["quantized_nodes"]) for f, q in quantization.items() if "quantized_nodes" in q},
              "float_nodes": {f: len(q["float_nodes"]) for f, q in quantization.items() if "float_nodes" in q}}
    (out_dir / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2))
    return bundle


def read_bundle(folder: Path) -> dict[str, Any]:
    """bundle.json of a bundle folder."""
    return json.loads((folder / BUNDLE_FILE).read_text())


def bundle_artifacts(folder: Path, bundle: dict[str, Any] | None = None) -> dict[str, Artifact]:
    """The bundle's artifacts by format; a missing file is a clear error."""
    bundle = bundle or read_bundle(folder)
    found = {}
    for fmt, rel in bundle.get("artifacts", {}).items():
        if not (folder / rel).is_file():
            raise ModelNotFoundError(f"{folder}: its {fmt} artifact {rel} is missing")
        found[fmt] = Artifact.load(folder / rel)
    return found
