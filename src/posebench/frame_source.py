"""Where `posebench stream` takes its frames from: a video file, an image folder or an image, or a camera, each
frame with its index and arrival time; and the input size that matches a footage's aspect."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from posebench.errors import InvalidInputError
from posebench.evaluate.data import IMAGE_SUFFIXES, VIDEO_SUFFIXES, list_images

MAX_CORRUPT_IN_A_ROW = 25  # a video that fails this many reads in a row has ended (or is broken beyond use)


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source
    image: np.ndarray
    arrival_ns: int  # when it became available (perf_counter_ns)


class FrameSource:
    """Frames of a video file, an image folder or a camera index, with the source's frame rate.
    Unreadable frames are skipped and counted in `corrupt`."""

    def __init__(self, source: str | Path | int, *, fps: float | None = None, max_frames: int = 0):
        self.corrupt: list[str] = []
        self.max_frames = max_frames
        self.frame_count = 0  # frames a video file declares (0: unknown, a camera or images)
        self._capture: cv2.VideoCapture | None = None
        self._images: list[Path] = []
        text = str(source)
        if isinstance(source, int) or text.isdigit():
            self.name = f"camera {int(text)}"
            self._capture = cv2.VideoCapture(int(text))
            if not self._capture.isOpened():
                raise InvalidInputError(f"camera {int(text)} does not open (no such device, or it is busy)")
            native = self._capture.get(cv2.CAP_PROP_FPS)
            self.live = True
        else:
            path = Path(source)
            self.name = path.name
            self.live = False
            if not path.exists():
                raise InvalidInputError(f"{path} does not exist")
            if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
                self._images = list_images(path) if path.is_dir() else [path]
                if not self._images:
                    raise InvalidInputError(f"{path}: no image found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
                native = 0.0
            elif path.suffix.lower() in VIDEO_SUFFIXES:
                self._capture = cv2.VideoCapture(str(path))
                if not self._capture.isOpened():
                    raise InvalidInputError(f"{path}: OpenCV cannot open this video (unreadable or not a video)")
                native = self._capture.get(cv2.CAP_PROP_FPS)
                self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            else:
                raise InvalidInputError(f"{path}: not a video ({', '.join(sorted(VIDEO_SUFFIXES))}), an image or a "
                                        "folder of images")
        self.native_fps = float(native) if native and np.isfinite(native) and native > 0 else None
        self.fps = float(fps) if fps else (self.native_fps or 25.0)
        if self.fps <= 0:
            raise InvalidInputError(f"--fps must be > 0, got {fps}")

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index, BGR frame) in source order; unreadable ones skipped (and recorded)."""
        count = 0
        if self._images:
            for index, path in enumerate(self._images):
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    self.corrupt.append(f"{path.name}: unreadable image")
                    continue
                yield index, image
                count += 1
                if self.max_frames and count >= self.max_frames:
                    return
            return
        assert self._capture is not None
        index, misses = 0, 0
        step_ms = 1000.0 / self.native_fps if self.native_fps else None
        expected_ms = 0.0
        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                total = self.frame_count
                position = int(self._capture.get(cv2.CAP_PROP_POS_FRAMES) or 0)
                if self.live or not total or max(index, position) >= total or misses >= MAX_CORRUPT_IN_A_ROW:
                    return
                self.corrupt.append(f"frame {index}: could not be decoded")
                misses += 1
                index += 1
                expected_ms += step_ms or 0.0
                continue
            misses = 0
            if step_ms and not self.live:  # the decoder may skip a broken frame by itself: its timestamp says so
                stamp = self._capture.get(cv2.CAP_PROP_POS_MSEC)
                skipped = round((stamp - expected_ms) / step_ms) if stamp > 0 and index else 0
                for missing in range(index, index + max(skipped, 0)):
                    self.corrupt.append(f"frame {missing}: could not be decoded")
                index += max(skipped, 0)
                expected_ms = stamp + step_ms if stamp > 0 else expected_ms + step_ms
            yield index, image
            index += 1
            count += 1
            if self.max_frames and count >= self.max_frames:
                return

    def first_frame(self) -> np.ndarray:
        """The first readable frame (to choose the input shape); the source is rewound afterwards."""
        for _, image in self.frames():
            self.rewind()
            return image
        raise InvalidInputError(f"{self.name}: no frame could be decoded")

    def rewind(self) -> None:
        self.corrupt.clear()
        if self._capture is not None and not self.live:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


def matched_imgsz(frame_hw: tuple[int, int], long_side: int = 640, stride: int = 32) -> tuple[int, int]:
    """The input (height, width) matched to a frame's aspect: the long side `long_side`, the short side the
    letterboxed frame's, rounded up to the stride (16:9 -> 384x640, 4:3 -> 480x640)."""
    h, w = frame_hw
    r = long_side / max(h, w)
    short = int(np.ceil(min(h, w) * r / stride) * stride)
    return (short, long_side) if w >= h else (long_side, short)
