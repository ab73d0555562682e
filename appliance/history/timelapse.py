"""The timelapse of a job: an H.264 MP4 made from its saved frames with ffmpeg, as
printer-realtime-bridge made it, and checked with ffprobe.

* frame rate: ``ceil(frames / timelapse.target_duration_s)``, at least 1, at most ``timelapse.fps_cap``;
* width: at most ``timelapse.max_width`` (height follows, even), ``yuv420p``, ``+faststart``;
* size: at most ``timelapse.max_bytes``. When an encode is larger, the quality is lowered first (CRF up
  in steps sized by the overshoot, to :data:`MAX_CRF`), then the width (x 0.75 per step, to
  :data:`MIN_WIDTH`); once one fits, a few more encodes bisect the CRF back towards the best quality
  that still fits. One that never fits is deleted and reported.

The file is written as ``timelapse.mp4`` beside the frames (a temporary name until ffprobe confirmed
an H.264 stream with the expected frame count). Runs on the history sink's slow-work thread.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config.history import TimelapseConfig
from appliance.errors import ActionError
from appliance.history.frames import job_frames

logger = logging.getLogger(__name__)

MAX_CRF = 38
MIN_WIDTH = 160
MAX_ATTEMPTS = 12
MAX_REFINEMENTS = 3  # encodes spent bisecting the CRF once one fits
FILENAME = "timelapse.mp4"


class TimelapseError(ActionError):
    """ffmpeg is missing, failed, or no encode fitted under the size limit."""


@dataclass(frozen=True)
class Timelapse:
    path: Path
    size_bytes: int
    frames: int
    fps: int
    width: int
    height: int
    crf: int
    duration_s: float
    attempts: int
    encode_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "frames": self.frames,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "crf": self.crf,
            "duration_s": round(self.duration_s, 3),
            "attempts": self.attempts,
            "encode_s": round(self.encode_s, 2),
        }


def timelapse_fps(frames: int, config: TimelapseConfig) -> int:
    return max(1, min(config.fps_cap, math.ceil(frames / config.target_duration_s)))


def probe(path: Path, timeout_s: float = 60.0) -> dict[str, Any]:
    """ffprobe's view of the first video stream: codec, width, height, frames, duration (seconds)."""
    # fmt: off
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
         "-show_entries", "stream=codec_name,width,height,nb_read_frames,avg_frame_rate:format=duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    # fmt: on
    if out.returncode != 0:
        raise TimelapseError(f"ffprobe failed on {path.name}: {out.stderr.strip()[:200]}")
    data = json.loads(out.stdout)
    streams = data.get("streams") or [{}]
    stream = streams[0]
    return {
        "codec": stream.get("codec_name"),
        "width": int(stream.get("width") or 0),
        "height": int(stream.get("height") or 0),
        "frames": int(stream.get("nb_read_frames") or 0),
        "duration_s": float((data.get("format") or {}).get("duration") or 0.0),
    }


def _encode(folder: Path, out: Path, fps: int, width: int, crf: int, timeout_s: float) -> None:
    # run inside the folder so the glob sees only plain frame names (no quoting of the user's path)
    # fmt: off
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
           "-framerate", str(fps), "-pattern_type", "glob", "-i", "*.jpg",
           "-vf", f"scale='min(iw,{width})':-2,format=yuv420p,setsar=1",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
           "-movflags", "+faststart", "-an", out.name]
    # fmt: on
    try:
        result = subprocess.run(
            cmd, cwd=folder, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise TimelapseError(f"ffmpeg took longer than {timeout_s:.0f} s") from None
    if result.returncode != 0:
        raise TimelapseError(f"ffmpeg failed ({result.returncode}): {result.stderr.strip()[:300]}")


def make_timelapse(folder: Path, config: TimelapseConfig) -> Timelapse:
    """Encode the frames in ``folder`` into ``folder/timelapse.mp4`` under ``config.max_bytes``."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise TimelapseError("ffmpeg/ffprobe are not installed (apt-get install ffmpeg)")
    frames = job_frames(folder)
    if not frames:
        raise TimelapseError(f"no frames in {folder}")
    fps = timelapse_fps(len(frames), config)
    tmp, kept, final = folder / f".{FILENAME}.tmp.mp4", folder / f".{FILENAME}.fit.mp4", folder / FILENAME
    width, crf = config.max_width, config.crf
    too_big: int | None = None  # highest CRF found too large at this width
    best: tuple[int, int, dict[str, Any]] | None = None  # (crf, size, probe) of the best fitting encode
    refinements = 0
    started = time.monotonic()
    try:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            _encode(folder, tmp, fps, width, crf, config.timeout_s)
            size = tmp.stat().st_size
            info = probe(tmp)
            logger.info("timelapse %s: attempt %d, %d frames at %d fps, %dx%d crf %d: %d bytes",
                        folder.name, attempt, len(frames), fps, info["width"], info["height"], crf,
                        size)  # fmt: skip
            if size <= config.max_bytes:
                os.replace(tmp, kept)
                best = (crf, size, info)
            else:
                too_big = crf
            if best is not None:
                # a fit is known: bisect towards the best quality that still fits, a few encodes at most
                if too_big is None or best[0] - too_big <= 2 or refinements >= MAX_REFINEMENTS:
                    break
                crf, refinements = (too_big + best[0]) // 2, refinements + 1
            elif crf < MAX_CRF:
                crf = min(MAX_CRF, crf + max(2, math.ceil(6 * math.log2(size / config.max_bytes))))
            elif info["width"] > MIN_WIDTH:
                width, too_big = max(MIN_WIDTH, int(info["width"] * 0.75) // 2 * 2), None
            else:
                break
        if best is None:
            raise TimelapseError(f"no encode under {config.max_bytes} bytes")
        crf, size, info = best
        if info["codec"] != "h264" or info["frames"] != len(frames):
            raise TimelapseError(f"ffprobe saw {info['codec']} with {info['frames']} frames, "
                                 f"expected h264 with {len(frames)}")  # fmt: skip
        os.replace(kept, final)
        return Timelapse(final, size, len(frames), fps, info["width"], info["height"], crf,
                         info["duration_s"], attempt, time.monotonic() - started)  # fmt: skip
    finally:
        tmp.unlink(missing_ok=True)
        kept.unlink(missing_ok=True)
