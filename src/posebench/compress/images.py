"""The images a compression learns from without labels: frames of a video or folder, int8 calibration sets,
the small batches the channel sensitivity scan and the reconstruction read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posebench.compress.options import CompressOptions
from posebench.errors import InvalidInputError


def source_frames(source: Path, limit: int):  # noqa: ANN202 - a generator of (name, image)
    from posebench.evaluate.validate import iter_frames

    stride = 1
    if source.is_file() and source.suffix.lower() in (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v"):
        import cv2

        capture = cv2.VideoCapture(str(source))
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        capture.release()
        stride = max(1, total // limit) if limit and total else 1
    return iter_frames(source, max_frames=limit, stride=stride)


def scan_images(source: Path, count: int = 8, imgsz: int = 320, limit: int | None = None) -> Any:
    """A float batch (letterboxed, 0-1) of `count` images spread over the first `limit` of `source` (default
    50 x count), for the channel sensitivity scan and the reconstruction."""
    import numpy as np
    import torch

    from posebench.evaluate.preprocess import letterbox, to_batch

    limit = limit or 50 * count
    available = sum(1 for _ in calibration_frames(source, limit))  # a first pass counts, keeps nothing
    n = min(count, available)
    wanted = {round(i * (available - 1) / max(n - 1, 1)) for i in range(n)}  # spread over the source
    images = [to_batch(letterbox(image, (imgsz, imgsz))[0])
              for k, image in enumerate(calibration_frames(source, limit)) if k in wanted]
    if not images:
        raise InvalidInputError(f"{source}: no readable image for the channel sensitivity scan")
    return torch.from_numpy(np.concatenate(images))


def calibration_frames(source: Path, limit: int):  # noqa: ANN202 - a generator of images
    """Images for int8 calibration from a folder, an image, a video, or a data YAML's train split."""
    if source.suffix.lower() in (".yaml", ".yml"):
        from posebench.evaluate.data import load_dataset
        from posebench.evaluate.validate import read_image

        dataset = load_dataset(source, split="train")
        return (read_image(s.image) for s in dataset.samples[:limit])
    return (image for _, image in source_frames(source, limit))


def calibration_dataset(frames: Any, folder: Path, kpt_shape: tuple[int, int]) -> Path:
    """Calibration images as the unlabelled Ultralytics pose dataset its int8 exporter reads (the val split)."""
    import cv2
    import yaml

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, (_, image) in enumerate(frames, 1):
        cv2.imwrite(str(images / f"{count:06d}.jpg"), image)
    if not count:
        raise InvalidInputError("the calibration source holds no readable images or frames")
    spec = {"path": str(folder.resolve()), "train": "images", "val": "images", "kpt_shape": list(kpt_shape),
            "names": {0: "person"}}
    path = folder / "calibration.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def calibration_source(q: Any, options: CompressOptions, fallback: Path | None = None) -> Path:
    source = options.calibration or (Path(q.calibration_source) if q.calibration_source else fallback)
    if source is None:
        raise InvalidInputError("int8 quantization needs calibration images: give --calib IMAGES_OR_VIDEO "
                                "(or a data YAML), or set calibration_source in the recipe")
    if not source.exists():
        raise InvalidInputError(f"calibration source {source} does not exist")
    return source
