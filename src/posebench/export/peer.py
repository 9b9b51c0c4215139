"""The peer's export: what a user gets from one `yolo export format=openvino|onnx [int8=True]` line, built from the
same checkpoint so studies and reports show it beside posebench's own artifacts."""

from __future__ import annotations

from pathlib import Path

from posebench.export.artifact import Artifact
from posebench.export.imported import find_artifact, import_metadata
from posebench.ultralytics_adapter import export_ultralytics


def ultralytics_export(checkpoint: Path, *, fmt: str, imgsz: tuple[int, int], int8: bool = False,
                       data: Path | None = None) -> Artifact:
    """Ultralytics' own export with its defaults (static batch-1 input; int8 calibrated on `data`), read back as an
    imported artifact (its metadata from what Ultralytics wrote). The path is the .onnx or the .xml inside the
    `*_openvino_model` folder, beside the checkpoint."""
    written = export_ultralytics(checkpoint, fmt=fmt, imgsz=imgsz, int8=int8, data=data)
    found = find_artifact(written)
    if found is None:
        raise RuntimeError(f"Ultralytics' {fmt} export wrote {written}, which posebench cannot read back: "
                           "please report this")
    kind, path = found
    return Artifact(path, import_metadata(path, kind, str(written)))
