"""The configuration tree of Layerwatch: one TOML file, validated by these pydantic models.

Every table rejects unknown keys; every field carries a description with its unit and a default
(see ``layerwatch check-config --schema`` for the JSON schema). Environment variables and systemd
credentials are layered on top by :mod:`appliance.config.loader`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from appliance.config.api import ApiConfig
from appliance.config.base import StrictModel
from appliance.config.cloud import CloudConfig
from appliance.config.hardware import HardwareConfig
from appliance.config.history import HistoryConfig
from appliance.config.integrations import MqttConfig, NotifyConfig, PrinterConfig
from appliance.config.sources import SourceConfig
from appliance.config.telemetry import TelemetryConfig
from appliance.config.yolo import SecondOpinionConfig, YoloDetectorConfig, detector_kind

DEFAULT_CONFIG_PATH = Path("/etc/layerwatch/layerwatch.toml")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class ServiceConfig(StrictModel):
    """How the service loop runs."""

    state_dir: Path = Field(
        Path("/var/lib/layerwatch"),
        description="Where calibrations and the alert outbox live (systemd StateDirectory).",
    )
    analysis_interval_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="Seconds between analysed frames per camera (env ANALYSIS_INTERVAL); 0: no pause.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level; VERBOSE_LOGGING=true sets debug."
    )
    test_mode: bool = Field(
        False,
        description="Analyse nothing until a manual trigger (SIGUSR1), then one frame per camera per trigger "
        "(env TEST_MODE, as the RTSP+Bedrock detector did); `layerwatch test` is the one-shot.",
    )
    max_consecutive_errors: int = Field(5, ge=1, description="Errors in a row before backing off.")
    error_backoff_s: float = Field(60.0, ge=0, description="Seconds to pause after too many errors in a row.")
    watchdog: bool = Field(
        True, description="Send WATCHDOG=1 from the analysis loop when systemd asks for it."
    )


class DetectorConfig(StrictModel):
    """The on-device model and how its score becomes a decision."""

    type: Literal["auto", "onnx", "litert"] = Field(
        "auto",
        description="Inference backend; auto runs the first variant of the model this machine can load "
        "(int8 ONNX, else LiteRT), never the winner of a timing race.",
    )
    model: Path | None = Field(
        None, description="Model file (.onnx or .tflite); default: the model shipped with the package."
    )
    threads: int = Field(1, ge=1, le=8, description="CPU threads for inference.")
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Failure score at or above which a frame is a failure; default: the model's.",
    )
    uncertain_band: float | None = Field(
        None,
        ge=0,
        le=0.5,
        description="Half-width of the score band around the threshold reported as uncertain.",
    )
    second_opinion: SecondOpinionConfig | None = Field(
        None, description="A YOLO box model run only on the frames this model finds suspect (two-stage)."
    )


class DecisionConfig(StrictModel):
    """Sliding-window vote, verification burst and cooldown (all per camera)."""

    window: int = Field(5, ge=1, le=100, description="Number of most recent analysed frames in the vote.")
    votes: int = Field(3, ge=1, le=100, description="Failure votes within the window that make a suspect.")
    verify_frames: int = Field(4, ge=0, le=20, description="Fresh frames analysed in the verification burst.")
    verify_interval_s: float = Field(2.0, ge=0, le=60, description="Seconds between burst frames.")
    verify_min_agree: int = Field(
        2, ge=1, le=20, description="Burst frames that must say failure to confirm."
    )
    cooldown_s: float = Field(900.0, ge=0, description="Seconds after an alert before another can be raised.")
    uncertain_counts_as_failure: bool = Field(
        False, description="Count an uncertain frame as a failure vote when no cloud judge resolves it."
    )

    @model_validator(mode="after")
    def _consistent(self) -> DecisionConfig:
        if self.votes > self.window:
            raise ValueError(f"votes ({self.votes}) cannot exceed window ({self.window})")
        if self.verify_frames and self.verify_min_agree > self.verify_frames:
            raise ValueError(
                f"verify_min_agree ({self.verify_min_agree}) cannot exceed "
                f"verify_frames ({self.verify_frames})"
            )
        return self


class CalibrationConfig(StrictModel):
    """How ``layerwatch calibrate`` learns this camera's normal look."""

    frames: int = Field(20, ge=1, le=500, description="Frames to capture from the camera.")
    interval_s: float = Field(1.0, ge=0, description="Seconds between captured frames.")


class CameraConfig(StrictModel):
    """One printer's camera: its source, decision rules, calibration and MQTT topics."""

    name: str = Field("printer", description="Short id used in topics and the state folder ([a-z0-9_-]).")
    source: SourceConfig
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    sensitivity: float = Field(
        0.0, ge=-3, le=3,
        description="Shift of the camera's failure threshold in logits: +1 alerts sooner, -1 later (the "
        "console's Settings keep it in <state_dir>/settings.json).",
    )  # fmt: skip

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must be 1-32 characters of a-z, 0-9, _ and -, starting with a letter or digit")
        return value


class AlarmConfig(StrictModel):
    """What happens after a confirmed failure, shared by every output (printer, relay, buzzer)."""

    countdown_s: float = Field(
        default=60.0, ge=0, le=3600,
        description="Seconds between the alert and the printer/relay action; an acknowledge cancels it.",
    )  # fmt: skip
    buzzer_max_s: float = Field(
        default=300.0, ge=0, description="Longest the alarm sounds when nobody acknowledges it (seconds)."
    )
    camera_lost_alert_s: float = Field(
        default=30.0, ge=0, le=3600,
        description="A camera offline or frozen this many seconds while its linked printer prints raises an "
        "alert (0: never; needs a [printer] that is polled).",
    )  # fmt: skip
    camera_lost_pauses_print: bool = Field(
        default=False,
        description="That alert also runs the printer's countdown (pause or cancel after countdown_s).",
    )


class LayerwatchConfig(StrictModel):
    """The whole configuration of one appliance."""

    service: ServiceConfig = Field(default_factory=ServiceConfig)
    detector: Annotated[
        Annotated[DetectorConfig, Tag("prototype")] | Annotated[YoloDetectorConfig, Tag("yolo")],
        Discriminator(detector_kind),
    ] = Field(default_factory=DetectorConfig, description="The on-device model: prototype (default) or yolo.")
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras to watch (one or two).")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    cloud: CloudConfig = Field(default_factory=CloudConfig)
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    alarm: AlarmConfig = Field(default_factory=AlarmConfig)
    printer: PrinterConfig | None = Field(
        None, description="The linked printer (OctoPrint or Moonraker), paused or cancelled on a failure."
    )
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)

    @model_validator(mode="after")
    def _unique_cameras(self) -> LayerwatchConfig:
        names = [c.name for c in self.cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"camera names must be unique, repeated: {', '.join(dupes)}")
        return self
