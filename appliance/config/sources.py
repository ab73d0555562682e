"""Configuration of frame sources, one model per ``type``.

A camera's ``source`` table picks its plugin with ``type``; unknown keys are rejected so a typo in
``layerwatch.toml`` fails loudly at ``layerwatch check-config`` instead of being silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from appliance.config.base import StrictModel


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be a URL of scheme {' or '.join(schemes)} with a host, got {value!r}")
    return value


class RtspSourceConfig(StrictModel):
    """An RTSP(S) stream read with OpenCV's FFmpeg backend by a grabber thread that keeps only the
    newest frame."""

    type: Literal["rtsp"] = "rtsp"
    url: str = Field(title="Stream URL", description="rtsp:// or rtsps:// URL, credentials inline if needed.")
    transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="RTP transport; tcp survives lossy Wi-Fi."
    )
    open_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Seconds to wait for the stream to open."
    )
    read_timeout_s: float = Field(default=3.0, gt=0, le=60, description="Seconds one blocking read may take.")
    frozen_after_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Seconds without a new frame before the stream counts as frozen.",
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, description="First reconnect delay in seconds.")
    reconnect_max_s: float = Field(
        default=30.0, gt=0, description="Upper bound of the doubling reconnect delay."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, ("rtsp", "rtsps"))


class UsbSourceConfig(StrictModel):
    """A V4L2 webcam read through OpenCV."""

    type: Literal["usb"] = "usb"
    device: int | str = Field(
        default=0, description="V4L2 index (0) or device path (/dev/video0, /dev/layerwatch-cam)."
    )
    width: int | None = Field(default=None, gt=0, description="Requested capture width in pixels.")
    height: int | None = Field(default=None, gt=0, description="Requested capture height in pixels.")
    fps: float | None = Field(default=None, gt=0, description="Requested capture rate in frames per second.")
    frozen_after_s: float = Field(
        default=10.0, gt=0, description="Seconds without a new frame before it is frozen."
    )


class HttpSnapshotSourceConfig(StrictModel):
    """An HTTP(S) snapshot URL that returns one JPEG/PNG per GET (Foscam CGI, OctoPrint webcam, ...)."""

    type: Literal["http"] = "http"
    url: str = Field(description="http:// or https:// URL returning one image per request.")
    auth: Literal["none", "basic", "digest"] = Field(
        default="none", description="HTTP authentication scheme."
    )
    username: str | None = Field(default=None, description="User for basic/digest auth.")
    password: SecretStr | None = Field(default=None, description="Password for basic/digest auth (secret).")
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="Seconds per request.")
    retries: int = Field(default=2, ge=0, le=10, description="Retries per frame after a failed request.")
    retry_delay_s: float = Field(default=0.5, ge=0, description="Seconds between retries.")
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, ("http", "https"))


class CsiSourceConfig(StrictModel):
    """The Raspberry Pi camera through picamera2: ``lores`` at the model's input size for analysis,
    ``main`` for the evidence snapshot."""

    type: Literal["csi"] = "csi"
    camera_num: int = Field(default=0, ge=0, le=7, description="libcamera camera index.")
    main_size: tuple[int, int] = Field(
        default=(1640, 1232), description="Evidence stream size (width, height) in px."
    )
    lores_size: tuple[int, int] | None = Field(
        default=None, description="Analysis stream size in px; default: the model's input size."
    )
    frozen_after_s: float = Field(
        default=10.0, gt=0, description="Seconds without a new frame before it is frozen."
    )


class ReplaySourceConfig(StrictModel):
    """A video file or a folder of images, played in order (demo, benchmark, evaluation)."""

    type: Literal["replay"] = "replay"
    path: Path = Field(description="Video file (.mp4, .mkv, ...) or folder of .jpg/.png images.")
    rate_fps: float = Field(
        default=0.0, ge=0, description="Playback rate in frames/s; 0 plays as fast as possible."
    )
    loop: bool = Field(
        default=False, description="Start again at the end instead of reporting end of stream."
    )


SourceConfig = Annotated[
    RtspSourceConfig | UsbSourceConfig | HttpSnapshotSourceConfig | CsiSourceConfig | ReplaySourceConfig,
    Field(discriminator="type"),
]
