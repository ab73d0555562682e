"""Configuration of print history: job records, saved frames, timelapses, retention, job notifications.

``[history]`` is off unless switched on in the file or by one of printer-realtime-bridge's environment
variables (``PROGRESS_STEP``, ``PHOTO_INTERVAL_SECONDS``, ``IMAGES_DIR``, ``IMAGE_RETENTION_DAYS``,
``TIMELAPSE_*``, ``TELEGRAM_BOT_TOKEN``; see :data:`appliance.config.loader.HISTORY_SWITCHES`).
Wiring: :mod:`appliance.history.sink` reads it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from appliance.config.base import StrictModel


class TimelapseConfig(StrictModel):
    """The H.264 MP4 made from a job's frames when it ends (ffmpeg), as printer-realtime-bridge made it."""

    enabled: bool = Field(True, description="Make a timelapse when a job ends.")
    max_bytes: int = Field(
        52_428_800,
        ge=100_000,
        description="Largest MP4 in bytes (env TIMELAPSE_MAX_BYTES); width and "
        "quality are lowered until it fits.",
    )
    target_duration_s: float = Field(
        45.0,
        gt=0,
        le=3600,
        description="Wanted length in seconds (env TIMELAPSE_TARGET_DURATION_SECONDS); "
        "fps = ceil(frames / this), capped.",
    )
    max_width: int = Field(
        1280, ge=64, le=7680, description="Widest output in pixels (env TIMELAPSE_MAX_WIDTH)."
    )
    fps_cap: int = Field(30, ge=1, le=120, description="Highest frame rate (env TIMELAPSE_FPS_CAP).")
    crf: int = Field(23, ge=0, le=51, description="First x264 quality tried (lower is better, larger).")
    timeout_s: float = Field(600.0, gt=0, description="Longest one ffmpeg run may take, in seconds.")


class JobNotifyConfig(StrictModel):
    """Which job messages go to the alert channels (Telegram, Discord, MQTT events); each switchable."""

    job_start: bool = Field(True, description="A job started, or the printer's file changed.")
    state_changes: bool = Field(True, description="The printer's state changed (printing, paused, ...).")
    progress: bool = Field(True, description="Progress every progress_step percent.")
    progress_step: float = Field(
        5.0, gt=0, le=100, description="Percent between progress messages (env PROGRESS_STEP)."
    )
    errors: bool = Field(True, description="The printer reported an error state.")
    photos: bool = Field(True, description="A photo every photo_interval_s while printing.")
    photo_interval_s: float = Field(
        3600.0, gt=0, description="Seconds between photos while printing (env PHOTO_INTERVAL_SECONDS)."
    )
    final_photo: bool = Field(True, description="A last photo when the job ends.")
    timelapse: bool = Field(True, description="Send the timelapse when it is made.")


class HistoryConfig(StrictModel):
    """Print jobs (from the linked printer, else monitoring on to off), their frames and timelapses."""

    enabled: bool = Field(False, description="Keep job records, frames and timelapses and send job messages.")
    images_dir: Path | None = Field(
        None,
        description="Where frames go, as <images_dir>/<camera>/<job>/ (env IMAGES_DIR); "
        "unset: <state_dir>/images; a relative path is under state_dir.",
    )
    frame_interval_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="Seconds between frames saved for the timelapse (0: every analysed one).",
    )
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality of saved frames.")
    image_retention_days: float = Field(
        7.0,
        ge=0,
        description="Frames and timelapses older than this are deleted (env IMAGE_RETENTION_DAYS); "
        "0 keeps them.",
    )
    evidence_retention_days: float = Field(
        30.0,
        ge=0,
        description="Alert evidence JPEGs (<state_dir>/cameras/<camera>/alerts) older than this "
        "are deleted; 0 keeps them.",
    )
    retention_interval_s: float = Field(3600.0, ge=10, description="Seconds between retention sweeps.")
    min_free_mb: float = Field(
        200.0,
        ge=0,
        description="Free-space floor in MB: below it nothing is saved (said on MQTT P/event "
        "and in the log); watching goes on.",
    )
    max_jobs: int = Field(500, ge=1, description="Job records kept in <state_dir>/history/jobs.json.")
    timelapse: TimelapseConfig = Field(default_factory=TimelapseConfig)
    notify: JobNotifyConfig = Field(default_factory=JobNotifyConfig)

    def images_path(self, state_dir: Path) -> Path:
        if self.images_dir is None:
            return state_dir / "images"
        return self.images_dir if self.images_dir.is_absolute() else state_dir / self.images_dir
