"""Letterboxing identical to Ultralytics' validator (rect=False), in numpy + OpenCV.

Two steps, as `ultralytics.data.BaseDataset.load_image` then `LetterBox(scaleup=False)`: resize the
long side to max(imgsz) (up or down, sides rounded up), then shrink further if needed to fit
(height, width), pad centred with grey 114. `Letterbox.to_original` undoes it for predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How one image was mapped into the model input: per-axis gain and padding (left, top)."""

    orig_shape: tuple[int, int]  # (height, width) of the original image
    gain: tuple[float, float]  # (gain_h, gain_w): input pixels per original pixel
    pad: tuple[int, int]  # (left, top) padding in input pixels

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2k) interleaved x, y coordinates from input pixels back to original pixels."""
        out = np.array(xy, dtype=np.float32, copy=True)
        out[..., 0::2] = (out[..., 0::2] - self.pad[0]) / self.gain[1]
        out[..., 1::2] = (out[..., 1::2] - self.pad[1]) / self.gain[0]
        return out


def letterbox_plan(shape: tuple[int, int], imgsz: tuple[int, int]) -> tuple[tuple[tuple[int, int], ...], Letterbox]:
    """The geometry of `letterbox` for an image of (height, width): the (width, height) of each resize step in order
    (none, one or two) and the resulting `Letterbox`. One function, so every pre-processing path pads alike."""
    h0, w0 = shape
    target = max(imgsz)
    steps: list[tuple[int, int]] = []
    w1, h1 = w0, h0
    r = target / max(h0, w0)
    if r != 1:
        w1, h1 = min(math.ceil(w0 * r), target), min(math.ceil(h0 * r), target)
        steps.append((w1, h1))
    r2 = min(imgsz[0] / h1, imgsz[1] / w1, 1.0)
    new_w, new_h = max(round(w1 * r2), 1), max(round(h1 * r2), 1)
    if (new_w, new_h) != (w1, h1):
        steps.append((new_w, new_h))
    dw, dh = (imgsz[1] - new_w) / 2, (imgsz[0] - new_h) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    gain = ((h1 / h0) * r2, (w1 / w0) * r2)
    return tuple(steps), Letterbox(orig_shape=(h0, w0), gain=gain, pad=(left, top))


def letterbox(image: np.ndarray, imgsz: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize and pad a BGR HxWx3 uint8 image to `imgsz` (height, width); returns the padded image."""
    steps, lb = letterbox_plan(image.shape[:2], imgsz)
    for size in steps:
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    new_h, new_w = image.shape[:2]
    left, top = lb.pad
    bottom, right = imgsz[0] - new_h - top, imgsz[1] - new_w - left
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return image, lb


class Letterboxer:
    """`letterbox` for a stream of frames: the same pixels, without the per-frame allocations. The grey canvas of
    each frame size is made once; a frame is resized straight into its centre. The returned image is that canvas,
    overwritten by the next call (copy it to keep it)."""

    def __init__(self, imgsz: tuple[int, int]):
        self.imgsz = (int(imgsz[0]), int(imgsz[1]))
        self._shape: tuple[int, ...] | None = None
        self._canvas = np.empty(0, np.uint8)
        self._plan: tuple[tuple[tuple[int, int], ...], Letterbox] | None = None

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        if image.shape != self._shape:
            self._shape = image.shape
            self._plan = letterbox_plan(image.shape[:2], self.imgsz)
            self._canvas = np.full((*self.imgsz, 3), PAD_VALUE, np.uint8)
        steps, lb = self._plan
        for size in steps[:-1]:
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        w, h = steps[-1] if steps else (image.shape[1], image.shape[0])
        left, top = lb.pad
        window = self._canvas[top:top + h, left:left + w]
        if steps:
            cv2.resize(image, (w, h), dst=window, interpolation=cv2.INTER_LINEAR)
        else:
            window[...] = image
        return self._canvas, lb


def to_batch(image: np.ndarray) -> np.ndarray:
    """BGR HxWx3 uint8 -> RGB 1x3xHxW float32 in [0, 1], contiguous (what every runtime takes)."""
    return np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)



PREPROCESS_PATHS = ("fused", "vectorised", "reference")


class Preprocessor:
    """A BGR frame -> (runtime input, `Letterbox`), by one of three paths giving the same letterboxed pixels:
    "reference" (`letterbox` + `to_batch`, the validator's historical code), "vectorised" (`Letterboxer` + `to_batch`)
    and "fused" (`Letterboxer` only: a 1xHxWx3 uint8 BGR tensor for a model that converts it itself)."""

    def __init__(self, imgsz: tuple[int, int], path: str = "reference"):
        if path not in PREPROCESS_PATHS:
            raise ValueError(f"pre-processing path must be one of {', '.join(PREPROCESS_PATHS)}, got '{path}'")
        self.imgsz, self.path = imgsz, path
        self._letterboxer = Letterboxer(imgsz)

    @property
    def input_layout(self) -> str:
        """What the runtime must take (a backend's `input` option)."""
        return "nhwc_u8_bgr" if self.path == "fused" else "nchw_float"

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            from posebench.errors import InvalidInputError

            got = "nothing" if image is None else f"{image.dtype} {image.shape}"
            raise InvalidInputError(f"expected a BGR HxWx3 uint8 frame, got {got}")
        if self.path == "reference":
            padded, lb = letterbox(image, self.imgsz)
            return to_batch(padded), lb
        canvas, lb = self._letterboxer(image)
        return (canvas[None], lb) if self.path == "fused" else (to_batch(canvas), lb)
