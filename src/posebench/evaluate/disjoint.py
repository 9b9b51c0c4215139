"""Data discipline: what a model learns from (fine-tuning, distillation, calibration, choices) never overlaps what
judges it. Two sets overlap when they share an image: the same file name stem (COCO names files by image id,
so a re-encoded copy of a val2017 image still has its name) or the same bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import yaml

from posebench.errors import InvalidInputError
from posebench.evaluate.data import IMAGE_SUFFIXES, dataset_root, list_images


def images_of(source: str | os.PathLike, split: str) -> list[Path]:
    """The images of an Ultralytics data YAML's split, an image folder or one image; [] for a video (frames have
    no identity to compare)."""
    source = Path(source)
    if source.suffix in (".yaml", ".yml") and source.is_file():
        spec = yaml.safe_load(source.read_text()) or {}
        folders = spec.get(split) or []
        folders = folders if isinstance(folders, list) else [folders]
        root = dataset_root(source, spec)
        return [image for folder in folders if (root / folder).is_dir() for image in list_images(root / folder)]
    if source.is_dir():
        return list_images(source)
    return [source] if source.suffix.lower() in IMAGE_SUFFIXES and source.is_file() else []


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def shared_images(learn: list[Path], judge: list[Path]) -> list[str]:
    """Images the two lists share, by file stem or by content."""
    stems = {p.stem for p in judge}
    shared = sorted({p.stem for p in learn} & stems)
    if shared:
        return shared
    sizes = {p.stat().st_size for p in judge}
    candidates = [p for p in learn if p.stat().st_size in sizes]  # hash only what could be a byte-for-byte copy
    if not candidates:
        return []
    judged = {_digest(p): p.name for p in judge if p.stat().st_size in {c.stat().st_size for c in candidates}}
    return sorted({judged[h] for h in map(_digest, candidates) if h in judged})


def check_disjoint(learn: str | os.PathLike, judge: str | os.PathLike, *, what: str = "recovery",
                   learn_split: str = "train", judge_split: str = "val") -> None:
    """Refuse, in one line, a learning set (fine-tuning / distillation / calibration) that shares images with the
    judging set."""
    shared = shared_images(images_of(learn, learn_split), images_of(judge, judge_split))
    if shared:
        more = f" and {len(shared) - 3} more" if len(shared) > 3 else ""
        raise InvalidInputError(f"the {what} set {learn} shares {len(shared)} image(s) with the judging set {judge} "
                                f"({', '.join(shared[:3])}{more}): a model must not learn from, be calibrated on or "
                                "be chosen on the images that judge it; remove them from one of the two")
