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


def letterbox(image: np.ndarray, imgsz: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize and pad a BGR HxWx3 uint8 image to `imgsz` (height, width); returns the padded image."""
    h0, w0 = image.shape[:2]
    target = max(imgsz)
    r = target / max(h0, w0)
    if r != 1:
        w1, h1 = min(math.ceil(w0 * r), target), min(math.ceil(h0 * r), target)
        image = cv2.resize(image, (w1, h1), interpolation=cv2.INTER_LINEAR)
    h1, w1 = image.shape[:2]
    r2 = min(imgsz[0] / h1, imgsz[1] / w1, 1.0)
    new_w, new_h = max(round(w1 * r2), 1), max(round(h1 * r2), 1)
    if (new_w, new_h) != (w1, h1):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (imgsz[1] - new_w) / 2, (imgsz[0] - new_h) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    gain = ((h1 / h0) * r2, (w1 / w0) * r2)
    return image, Letterbox(orig_shape=(h0, w0), gain=gain, pad=(left, top))


def to_batch(image: np.ndarray) -> np.ndarray:
    """BGR HxWx3 uint8 -> RGB 1x3xHxW float32 in [0, 1], contiguous (what every runtime takes)."""
    return np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)
