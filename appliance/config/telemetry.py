"""Configuration of printer telemetry: sensor topics, the anomaly detector's limits, control messages.

``[telemetry]`` subscribes to the monitoring system's ``printing/<printer_id>/sensor`` JSON and takes the
temperatures the linked printer (OctoPrint, Moonraker) reports on each poll. Wiring:
:mod:`appliance.telemetry.sink`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from appliance.config.base import StrictModel


class SignalConfig(StrictModel):
    """``[telemetry.signals.<key>]``: limits for one key of the sensor JSON (``nozzle_temp``, ``bed_temp``
    of the printer too). nozzle_temp (0..300, target nozzle_target, runaway 15, heating 120 s) and bed_temp
    (0..130, bed_target, 10, 300 s) are set unless given; e.g. roughness: ``max = 75``."""

    min: float | None = Field(None, description="Lowest plausible value; below it: out_of_range.")
    max: float | None = Field(None, description="Highest allowed value; above it: out_of_range.")
    target_key: str | None = Field(
        None,
        description="Key holding this signal's target (e.g. nozzle_target); its runaway and heating "
        "checks need one.",
    )
    runaway_delta: float | None = Field(
        None, gt=0, description="A value this far from a reached target is a runaway (units of the signal)."
    )
    heating_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Seconds a heater may stay more than runaway_delta under its target without "
        "rising (heater_not_heating).",
    )
    heating_min_rise: float = Field(
        2.0, gt=0, description="Rise within heating_timeout_s that counts as heating."
    )
    zscore: float | None = Field(
        6.0,
        gt=0,
        description="Robust z-score |x - median| / (1.4826 MAD) over the window that is an outlier; "
        "unset: no check.",
    )
    min_mad: float = Field(
        0.5,
        gt=0,
        description="Smallest MAD used, in the signal's units (a steady signal is not all outliers).",
    )

    @model_validator(mode="after")
    def _range(self) -> SignalConfig:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


def _default_signals() -> dict[str, SignalConfig]:
    return {
        "nozzle_temp": SignalConfig(
            min=0, max=300, target_key="nozzle_target", runaway_delta=15, heating_timeout_s=120
        ),
        "bed_temp": SignalConfig(
            min=0, max=130, target_key="bed_target", runaway_delta=10, heating_timeout_s=300
        ),
    }


class TelemetryConfig(StrictModel):
    """Printer sensor data, a small explainable anomaly detector and optional control messages."""

    enabled: bool = Field(False, description="Watch printer telemetry.")
    printer_id: str = Field("printer_1", description="The printer's id in the monitoring system's topics.")
    sensor_topic: str | None = Field(
        "printing/{printer_id}/sensor",
        description="JSON sensor topic ({printer_id} is filled in); unset: none.",
    )
    from_printer: bool = Field(
        True, description="Also read nozzle/bed temperature and targets from the linked printer on each poll."
    )
    camera: str | None = Field(
        None, description="Camera the anomaly alerts are raised on; unset: printer.camera, else the first."
    )
    signals: dict[str, SignalConfig] = Field(
        default_factory=_default_signals, description="Limits per signal key (a table per key)."
    )
    zscore_window: int = Field(
        120, ge=10, le=10000, description="Samples in the rolling window of the z-score."
    )
    min_samples: int = Field(20, ge=5, description="Samples needed before the z-score judges.")
    dropout_s: float = Field(
        30.0, gt=0, description="Seconds without a sample (after the first) that is a dropout."
    )
    cooldown_s: float = Field(
        600.0, ge=0, description="Seconds before the same anomaly of the same signal alerts again."
    )
    control_topic: str | None = Field(
        "printer/control/{printer_id}", description="Where control messages go ({printer_id} filled in)."
    )
    control: Literal["none", "adjust", "pause"] = Field(
        "none",
        description="On an anomaly publish nothing, an adjustment (target back to its value) or a "
        "pause to control_topic.",
    )
    pause_printer: bool = Field(
        False, description="Let an anomaly alert start the linked printer's countdown (printer.action)."
    )
    publish_interval_s: float = Field(
        5.0, ge=0.1, description="Seconds between figures on <prefix>/<device_id>/printer/telemetry."
    )

    @field_validator("signals", mode="before")
    @classmethod
    def _keep_defaults(cls, value: Any) -> Any:
        """A table for one more signal keeps the nozzle and bed defaults (a table per key replaces it)."""
        if isinstance(value, dict):
            return {**{k: v.model_dump() for k, v in _default_signals().items()}, **value}
        return value

    def topic(self, template: str) -> str:
        return template.replace("{printer_id}", self.printer_id)
