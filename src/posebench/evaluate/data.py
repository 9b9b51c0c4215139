"""Pose datasets: the Ultralytics layout (data YAML, images/ + labels/) and COCO keypoints JSON.

Both become a list of `Sample`s with ground truth in original-image pixels. Problems are never
silent: a label line with the wrong number of values or a keypoint count that does not match the
model raises `DataError` naming the file and line; an unreadable image is listed in
`Dataset.problems` and left out of scoring (as Ultralytics does), and the record says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from posebench.errors import InvalidInputError, ModelNotFoundError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v"}


class DataError(InvalidInputError):
    """A dataset file is malformed; the message names the file (and line) and what is wrong."""


@dataclass(frozen=True)
class Sample:
    """One image and its ground truth in original-image pixels."""

    image: Path
    image_id: int
    boxes: np.ndarray  # (n, 4) xyxy
    classes: np.ndarray  # (n,) int
    keypoints: np.ndarray  # (n, K, D)


@dataclass
class Dataset:
    """Samples plus what was wrong with the inputs that were left out."""

    name: str
    kpt_shape: tuple[int, int]
    samples: list[Sample]
    source: str  # "ultralytics" | "coco"
    coco_json: Path | None = None  # official-style annotations for COCOeval, when available
    problems: list[str] = field(default_factory=list)

    def check_model(self, model_kpt_shape: tuple[int, int] | list[int]) -> None:
        """Refuse a model whose keypoint layout differs from the labels'."""
        if tuple(model_kpt_shape) != tuple(self.kpt_shape):
            raise DataError(f"the model predicts keypoints of shape {list(model_kpt_shape)} but dataset {self.name} "
                            f"is labelled with kpt_shape {list(self.kpt_shape)}: scoring them together would be wrong")


def image_id_of(path: Path, fallback: int) -> int:
    """COCO convention: the numeric file stem is the image id (000000000785.jpg -> 785)."""
    return int(path.stem) if path.stem.isdigit() else fallback


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ModelNotFoundError(f"image folder {folder} does not exist")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    if "images" not in parts:
        raise DataError(f"{image}: Ultralytics layout expects images under an 'images' folder (labels beside it)")
    idx = len(parts) - 1 - parts[::-1].index("images")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def read_label_file(path: Path, *, kpt_shape: tuple[int, int], size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Parse one Ultralytics pose label file into pixel boxes (xyxy), classes and keypoints."""
    k, d = kpt_shape
    expected = 5 + k * d
    h, w = size
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        values = line.split()
        if not values:
            continue
        if len(values) != expected:
            hint = ""
            if (len(values) - 5) % 3 == 0 or (len(values) - 5) % 2 == 0:
                hint = f" (that is {len(values) - 5} keypoint values: does kpt_shape {list(kpt_shape)} match the labels?)"
            raise DataError(f"{path}:{number}: {len(values)} values, expected {expected} "
                            f"(class, 4 box values, {k} keypoints x {d}){hint}")
        try:
            rows.append([float(v) for v in values])
        except ValueError:
            raise DataError(f"{path}:{number}: not all values are numbers")
    if not rows:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros((0, k, d), np.float32)
    lb = np.asarray(rows, dtype=np.float32)
    if (lb[:, 1:5] > 1.0001).any() or (lb[:, 1:5] < 0).any():
        raise DataError(f"{path}: box values must be normalised to [0, 1]")
    _, first = np.unique(lb, axis=0, return_index=True)  # Ultralytics drops duplicate rows
    lb = lb[np.sort(first)]
    cx, cy, bw, bh = lb[:, 1] * w, lb[:, 2] * h, lb[:, 3] * w, lb[:, 4] * h
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    kpts = lb[:, 5:].reshape(-1, k, d).copy()
    if d == 3:  # a keypoint outside the image is not labelled, whatever its flag says
        kpts[..., 2] = np.where((kpts[..., 0] < 0) | (kpts[..., 1] < 0), 0.0, kpts[..., 2])
    kpts[..., 0] *= w
    kpts[..., 1] *= h
    return boxes.astype(np.float32), lb[:, 0].astype(np.int64), kpts.astype(np.float32)


def _image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) without decoding the whole image, or None if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            w, h = im.size
            from PIL import ImageOps

            exif = im.getexif()
            if exif.get(0x0112) in (5, 6, 7, 8):  # rotated by EXIF, as cv2.imread applies it
                w, h = h, w
            del ImageOps
        return h, w
    except Exception:
        return None


def dataset_root(data_yaml: Path, spec: dict[str, Any]) -> Path:
    """The folder an Ultralytics data YAML's splits are relative to: its `path`, itself relative to the YAML's
    folder, or (no `path`) the YAML's own folder."""
    root = Path(spec["path"]) if spec.get("path") else Path(".")
    return root if root.is_absolute() else (data_yaml.parent / root)


def load_ultralytics(data_yaml: Path, *, split: str = "val") -> Dataset:
    """A dataset described by an Ultralytics data YAML (`path`, `train`/`val` folders, `kpt_shape`)."""
    if not data_yaml.is_file():
        raise ModelNotFoundError(f"data file {data_yaml} does not exist")
    try:
        spec = yaml.safe_load(data_yaml.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{data_yaml}: not valid YAML ({exc})")
    if "kpt_shape" not in spec:
        raise DataError(f"{data_yaml}: no 'kpt_shape' key: is it a pose dataset?")
    if split not in spec:
        raise DataError(f"{data_yaml}: no '{split}' split (it has: {', '.join(k for k in spec if k in ('train', 'val', 'test'))})")
    root = dataset_root(data_yaml, spec)
    folders = spec[split] if isinstance(spec[split], list) else [spec[split]]
    kpt_shape = tuple(int(v) for v in spec["kpt_shape"])
    samples, problems = [], []
    for folder in folders:
        for n, image in enumerate(list_images(root / folder)):
            size = _image_size(image)
            if size is None:
                problems.append(f"{image}: unreadable or corrupt image, left out")
                continue
            label = _label_path(image)
            if label.is_file():
                boxes, classes, kpts = read_label_file(label, kpt_shape=kpt_shape, size=size)
            else:
                boxes, classes, kpts = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                                        np.zeros((0, *kpt_shape), np.float32))
            samples.append(Sample(image, image_id_of(image, len(samples)), boxes, classes, kpts))
            del n
    if not samples:
        raise DataError(f"{data_yaml}: no readable images in split '{split}' ({', '.join(map(str, folders))})")
    coco_json = spec.get(f"coco_json_{split}")
    return Dataset(name=data_yaml.stem, kpt_shape=kpt_shape, samples=samples, source="ultralytics",
                   coco_json=(root / coco_json) if coco_json else None, problems=problems)


def load_coco(annotations: Path, images: Path | None = None) -> Dataset:
    """A dataset from a COCO keypoints JSON and its image folder (default: `images/` beside the JSON's folder)."""
    if not annotations.is_file():
        raise ModelNotFoundError(f"annotations file {annotations} does not exist")
    try:
        coco = json.loads(annotations.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{annotations}: not valid JSON ({exc})")
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise DataError(f"{annotations}: no '{key}' list: is it a COCO keypoints file?")
    person = next((c for c in coco["categories"] if c.get("keypoints")), None)
    if person is None:
        raise DataError(f"{annotations}: no category with 'keypoints': not a COCO keypoints file")
    k = len(person["keypoints"])
    default_root = annotations.parent.parent / "images"
    index = _image_index(images or (default_root if default_root.is_dir() else annotations.parent.parent), annotations)
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0) or not ann.get("num_keypoints", 0):
            continue  # as Ultralytics' COCO converter: crowds and keypoint-less people are not instances
        kp = ann.get("keypoints", [])
        if len(kp) != k * 3:
            raise DataError(f"{annotations}: annotation {ann.get('id')} has {len(kp)} keypoint values, "
                            f"expected {k * 3} ({k} keypoints x 3)")
        by_image.setdefault(ann["image_id"], []).append(ann)
    samples, problems = [], []
    for info in sorted(coco["images"], key=lambda i: i["id"]):
        path = index.get(info["file_name"]) or index.get(Path(info["file_name"]).name)
        if path is None or _image_size(path) is None:
            path = path or Path(info["file_name"])
            problems.append(f"{path}: missing, unreadable or corrupt image, left out")
            continue
        anns = by_image.get(info["id"], [])
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in anns], dtype=np.float32).reshape(-1, 4)
        kpts = np.array([a["keypoints"] for a in anns], dtype=np.float32).reshape(-1, k, 3)
        samples.append(Sample(path, int(info["id"]), boxes, np.zeros(len(anns), np.int64), kpts))
    if not samples:
        raise DataError(f"{annotations}: none of its images were found ({len(problems)} missing); "
                        "pass the image folder with --images DIR")
    return Dataset(name=annotations.stem, kpt_shape=(k, 3), samples=samples, source="coco",
                   coco_json=annotations, problems=problems)


def _image_index(root: Path, annotations: Path) -> dict[str, Path]:
    """Images under `root` (recursively) by file name and by path relative to `root`."""
    if not root.is_dir():
        raise DataError(f"cannot find the images of {annotations}: {root} is not a folder; "
                        "pass the image folder with --images DIR")
    index: dict[str, Path] = {}
    for path in list_images(root):
        index.setdefault(path.name, path)
        index[str(path.relative_to(root))] = path
    return index


def load_dataset(data: str | os.PathLike, *, split: str = "val", images: str | os.PathLike | None = None) -> Dataset:
    """Load `--data`: an Ultralytics data YAML or a COCO keypoints JSON."""
    path = Path(data).expanduser()
    if path.suffix.lower() in (".yaml", ".yml"):
        return load_ultralytics(path, split=split)
    if path.suffix.lower() == ".json":
        return load_coco(path, Path(images) if images else None)
    raise InvalidInputError(f"--data must be an Ultralytics data YAML or a COCO keypoints JSON, got '{data}'")
