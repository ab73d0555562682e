"""The evidence image an alert carries: the frame with the model's failure heatmap drawn over it.

The heatmap (rows x cols patch scores in [0, 1]) is upscaled to the frame and blended in red where
the score is high, the strongest cells are outlined, a box model's failure boxes are drawn in yellow
with their confidences, and a caption gives camera, score and verdict. Everything is drawn on the
frame it is given (the pipeline passes the full-resolution evidence frame; boxes are normalised).
"""

from __future__ import annotations

import cv2
import numpy as np

from appliance.detector.base import Detection

JPEG_QUALITY = 85


def draw_evidence(image_bgr: np.ndarray, detection: Detection, caption: str = "") -> np.ndarray:
    """Return a copy of ``image_bgr`` with the evidence heatmap, boxes and caption drawn on it."""
    out = image_bgr.copy()
    height, width = out.shape[:2]
    if detection.heatmap is not None and detection.heatmap.size:
        heat = cv2.resize(
            detection.heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR
        )
        alpha = np.clip((heat - 0.5) * 2.0, 0.0, 1.0)[..., np.newaxis] * 0.55
        red = np.zeros_like(out)
        red[..., 2] = 255
        out = (out * (1 - alpha) + red * alpha).astype(np.uint8)
        rows, cols = detection.heatmap.shape
        hottest = np.argsort(detection.heatmap, axis=None)[::-1][:3]
        for index in hottest:
            r, c = divmod(int(index), cols)
            if detection.heatmap[r, c] < 0.5:
                break
            x0, y0 = int(c * width / cols), int(r * height / rows)
            x1, y1 = int((c + 1) * width / cols), int((r + 1) * height / rows)
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (0, 0, 255), 2)
    scale = max(0.4, width / 900)
    thickness = max(2, round(width / 400))
    for box in detection.boxes:
        p0 = (int(box.x0 * width), int(box.y0 * height))
        p1 = (int(box.x1 * width), int(box.y1 * height))
        cv2.rectangle(out, p0, p1, (0, 255, 255), thickness)
        # the box's confidence on a filled tag at its top left corner (inside the frame)
        label = f"{box.score:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        tx, ty = min(p0[0], max(width - tw - 4, 0)), max(p0[1], th + 6)
        cv2.rectangle(out, (tx, ty - th - 6), (tx + tw + 4, ty), (0, 255, 255), -1)
        cv2.putText(out, label, (tx + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    text = caption or f"score {detection.score:.2f} {detection.verdict.value}"
    cv2.rectangle(out, (0, 0), (width, int(28 * scale + 8)), (0, 0, 0), -1)
    cv2.putText(
        out, text, (6, int(22 * scale + 2)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
    )
    return out


def encode_jpeg(image_bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()
