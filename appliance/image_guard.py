"""Decode an image from outside only after its header says it is no bigger than a camera frame.

A compressed image says nothing about its decoded size: a 420 kB PNG of one colour decodes to
12000 x 12000 pixels, 432 MB as BGR (issue 33 measured 956-962 MB RSS after one such ``examples``
upload). Every decode of an image the appliance did not make itself (``POST
/api/cameras/<name>/examples``, ``layerwatch calibrate --failures DIR``, an HTTP snapshot camera's
answer) goes through :func:`decode_image`, which reads the width and height from the header (PNG
``IHDR``, the JPEG ``SOFn`` segment, the BMP info header) and raises :class:`ImageTooLargeError`
before OpenCV allocates anything when ``width * height`` is over the limit. A format whose header is
not one of those three is refused, since its size cannot be known before decoding.

The limit is the camera's largest frame (:func:`camera_pixel_limit`): the size its source is configured
to deliver (USB ``width`` x ``height``, CSI ``main_size``) or, for cameras that only show their size when
they deliver (RTSP, HTTP, replay), the largest frame seen so far; :data:`DEFAULT_MAX_PIXELS` (4096 x 3072,
12.6 MP, 38 MB as BGR) before any frame was seen.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import numpy as np

from appliance.errors import LayerwatchError

DEFAULT_MAX_PIXELS = 4096 * 3072  # a camera whose size is not known yet (pixels)
MIN_SIDE = 16  # smaller pictures carry nothing for the detector (pixels)
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_MAX_SCAN = 1 << 20  # bytes of markers looked through for the frame header


class ImageTooLargeError(LayerwatchError, ValueError):
    """An outside image is bigger than allowed, or its size cannot be read from its header."""


def image_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG or BMP header; None for anything else or a damaged header."""
    head = bytes(data[:32])
    if head.startswith(_PNG) and head[12:16] == b"IHDR" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    if head.startswith(b"BM") and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(int(width)), abs(int(height))
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    view = memoryview(data)
    pos, end = 2, min(len(view), _JPEG_MAX_SCAN)
    while pos + 4 <= end:
        if view[pos] != 0xFF:
            return None
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = (view[pos + 2] << 8) | view[pos + 3]
        if marker in _JPEG_SOF:
            if pos + 9 > len(view):
                return None
            height = (view[pos + 5] << 8) | view[pos + 6]
            width = (view[pos + 7] << 8) | view[pos + 8]
            return width, height
        if marker == 0xDA or length < 2:  # image data before any frame header: damaged
            return None
        pos += 2 + length
    return None


def check_size(data: bytes | bytearray | memoryview, max_pixels: int, what: str = "image") -> tuple[int, int]:
    """The ``(width, height)`` of ``data``; ImageTooLargeError if unknown or over ``max_pixels``."""
    size = image_size(data)
    if size is None:
        raise ImageTooLargeError(f"{what}: not a PNG, JPEG or BMP picture whose size its header gives")
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what}: {width} x {height} pixels is more than the camera's largest frame ({max_pixels} pixels)"
        )
    return width, height


def decode_image(data: bytes | bytearray | memoryview, max_pixels: int, what: str = "image") -> np.ndarray:
    """A BGR array of the picture in ``data``, decoded only once its header passed :func:`check_size`.
    Raises ImageTooLargeError for a picture over the limit, ValueError for one OpenCV cannot decode."""
    import cv2

    check_size(data, max_pixels, what)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"{what}: not a picture of at least {MIN_SIDE} x {MIN_SIDE} pixels")
    return image


def camera_pixel_limit(source: Any, frames_seen: Iterable[np.ndarray | None] = ()) -> int:
    """The pixels of a camera's largest frame: its configured size (USB ``width`` x ``height``, CSI
    ``main_size``) or the largest of ``frames_seen``; :data:`DEFAULT_MAX_PIXELS` when neither is known."""
    sizes = [int(a.shape[0]) * int(a.shape[1]) for a in frames_seen if a is not None and a.ndim >= 2]
    width, height = getattr(source, "width", None), getattr(source, "height", None)
    if isinstance(width, int) and isinstance(height, int):
        sizes.append(width * height)
    main = getattr(source, "main_size", None)
    if isinstance(main, tuple | list) and len(main) == 2:
        sizes.append(int(main[0]) * int(main[1]))
    return max(sizes) if sizes else DEFAULT_MAX_PIXELS
