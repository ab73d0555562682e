"""What leaves the device: the frame cropped to the print area, downscaled and JPEG-encoded.

Nothing else goes with it: no camera name, no time stamp, no EXIF block (OpenCV's JPEG encoder
writes none), no location. The larger evidence picture is used when the camera has one (the CSI
camera's ``main`` stream), since the judge sees detail the small analysis frame lost.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from appliance.config.cloud import PrintArea, PrivacyConfig
from appliance.errors import CloudError
from appliance.sources import Frame

logger = logging.getLogger(__name__)


def crop_to_area(image: np.ndarray, area: PrintArea | None) -> np.ndarray:
    """``image`` cut to ``area`` ((x0, y0, x1, y1) as fractions of width and height); the whole
    image when ``area`` is None. At least one pixel wide and high."""
    if area is None:
        return image
    height, width = image.shape[:2]
    x0, y0, x1, y1 = area
    left, top = int(x0 * width), int(y0 * height)
    right, bottom = max(left + 1, round(x1 * width)), max(top + 1, round(y1 * height))
    return image[top:bottom, left:right]


def downscale(image: np.ndarray, max_side_px: int) -> np.ndarray:
    """``image`` shrunk (never enlarged) so its longest side is at most ``max_side_px`` pixels."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side_px:
        return image
    scale = max_side_px / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def area_for(config: PrivacyConfig, camera: str) -> PrintArea | None:
    """The print area configured for ``camera`` (its own, else the shared one, else None)."""
    return config.camera_print_areas.get(camera, config.print_area)


def prepare_upload(frame: Frame, camera: str, config: PrivacyConfig) -> bytes:
    """The JPEG bytes the judge gets for ``frame``: cropped, downscaled, encoded, nothing more."""
    image = downscale(crop_to_area(frame.evidence_image, area_for(config, camera)), config.max_side_px)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
    if not ok:
        raise CloudError("cannot encode the frame as JPEG")
    data = encoded.tobytes()
    logger.debug("camera %s: upload %dx%d px, %d bytes", camera, image.shape[1], image.shape[0], len(data))
    return data
