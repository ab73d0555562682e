"""Letterboxing as the Ultralytics YOLO exporters expect it, and the way back to frame coordinates.

The frame is scaled by ``r = min(W / w, H / h)`` (aspect kept; ``INTER_LINEAR``), centred, and padded with
gray (114, 114, 114) to the model's (W, H); the padding splits as Ultralytics rounds it
(``round(d - 0.1)`` before, ``round(d + 0.1)`` after). With ``stride`` set (dynamic-shape models) the canvas
is the scaled frame rounded up to a multiple of the stride instead of (W, H).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed on the model's canvas: scale ``ratio`` and the left/top padding in pixels."""

    ratio: float
    pad_x: float
    pad_y: float
    frame_width: int
    frame_height: int

    def to_frame(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """(M, 4) x0, y0, x1, y1 in canvas pixels -> normalised [0, 1] frame coordinates (clipped)."""
        out = boxes_xyxy.astype(np.float32).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.ratio / self.frame_width
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.ratio / self.frame_height
        return np.clip(out, 0.0, 1.0)

    def from_frame(self, boxes_norm: np.ndarray) -> np.ndarray:
        """(M, 4) normalised frame x0, y0, x1, y1 -> canvas pixels (the inverse of :meth:`to_frame`)."""
        out = np.asarray(boxes_norm, np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.frame_width * self.ratio + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.frame_height * self.ratio + self.pad_y
        return out


def letterbox(
    image: np.ndarray, size: tuple[int, int], stride: int | None = None
) -> tuple[np.ndarray, Letterbox]:
    """``image`` (h, w, 3) -> (canvas (H, W, 3) of the same dtype, placement); ``size`` is (W, H)."""
    height, width = image.shape[:2]
    new_w, new_h = size
    ratio = min(new_w / width, new_h / height)
    unpad_w, unpad_h = round(width * ratio), round(height * ratio)
    pad_w, pad_h = new_w - unpad_w, new_h - unpad_h
    if stride:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    dw, dh = pad_w / 2, pad_h / 2
    if (width, height) != (unpad_w, unpad_h):
        image = cv2.resize(image, (unpad_w, unpad_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    canvas = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE, PAD_VALUE, PAD_VALUE)
    )
    return canvas, Letterbox(ratio, float(left), float(top), width, height)
