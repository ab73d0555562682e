"""CPU temperature into telemetry, and the analysis throttle when the board is hot.

The kernel reports the SoC temperature in millidegrees Celsius in
``/sys/class/thermal/thermal_zone0/temp`` (Raspberry Pi, and most Jetson zone 0s; the path is
``hardware.thermal.sensor_path``). :class:`ThermalGovernor` turns readings into a throttle with
hysteresis: throttled from ``throttle_above_c`` on, until the temperature falls below
``throttle_below_c``. :class:`ThermalSink` runs it from the service loop's ``on_tick`` and writes

* ``cpu_temperature_c`` (°C, absent while unreadable),
* ``throttled`` (1.0 / 0.0),
* ``interval_scale`` (the runner multiplies the analysis interval by it: 1.0 when cool),
* ``fan_duty`` (0.0-1.0, from the ``layerwatch-fan`` state file while it is fresh)

into ``context.telemetry``. No GPIO is touched here, so this also runs where there is no board.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.hardware import FanConfig, ThermalConfig

logger = logging.getLogger(__name__)

CPU_TEMPERATURE_FILE = Path("/sys/class/thermal/thermal_zone0/temp")  # millidegrees Celsius


def cpu_temperature_c(telemetry: dict[str, float]) -> float | None:
    """From the thermal governor's numbers if it runs, else the kernel's thermal zone 0."""
    if "cpu_temperature_c" in telemetry:
        return round(float(telemetry["cpu_temperature_c"]), 1)
    try:
        return round(int(CPU_TEMPERATURE_FILE.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def read_cpu_temperature(path: Path) -> float:
    """The temperature in °C from a thermal-zone file (millidegrees); raises OSError or
    ValueError when the file is missing, unreadable or not a number."""
    raw = path.read_text().strip()
    value = float(raw)
    # a few drivers report whole degrees; millidegrees are never below 200 for a running board
    return value / 1000.0 if abs(value) >= 200 else value


@dataclass
class ThermalGovernor:
    """Throttle decision with hysteresis. ``update(temperature)`` returns the interval scale."""

    throttle_above_c: float
    throttle_below_c: float
    scale: float
    throttled: bool = False

    def update(self, temperature_c: float | None) -> float:
        if temperature_c is None:
            return self.scale if self.throttled else 1.0  # unknown: keep the last decision
        if not self.throttled and temperature_c >= self.throttle_above_c:
            self.throttled = True
            logger.warning(
                "CPU %.1f °C >= %.1f °C: analysis interval x%.1f", temperature_c, self.throttle_above_c,
                self.scale,
            )  # fmt: skip
        elif self.throttled and temperature_c < self.throttle_below_c:
            self.throttled = False
            logger.info("CPU %.1f °C < %.1f °C: full analysis rate", temperature_c, self.throttle_below_c)
        return self.scale if self.throttled else 1.0


def read_fan_state(path: Path, max_age_s: float, now: float | None = None) -> dict[str, object] | None:
    """The fan service's last state (``{"duty": 0.0-1.0, ...}``) if the file is fresh, else None."""
    now = time.time() if now is None else now
    try:
        if now - path.stat().st_mtime > max_age_s:
            return None
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


class ThermalSink:
    """An action sink that only has ``on_tick``: temperature, throttle and fan duty to telemetry."""

    def __init__(self, config: ThermalConfig, fan: FanConfig, telemetry: dict[str, float]):
        self.config = config
        self.fan_state_file = fan.state_file
        self.telemetry = telemetry
        self.governor = ThermalGovernor(
            config.throttle_above_c, config.throttle_below_c, config.interval_scale
        )
        self._warned = False

    def read(self) -> float | None:
        try:
            temperature = read_cpu_temperature(self.config.sensor_path)
        except (OSError, ValueError) as exc:
            if not self._warned:
                # no thermal zone at all (a VM, CI) is normal; a zone that stops answering is not
                level = logging.INFO if isinstance(exc, FileNotFoundError) else logging.WARNING
                logger.log(level, "CPU temperature unreadable (%s): %s", self.config.sensor_path, exc)
                self._warned = True
            return None
        self._warned = False
        return temperature

    def start(self) -> None:
        self.on_tick(time.monotonic())

    def on_tick(self, now: float) -> None:
        temperature = self.read()
        scale = self.governor.update(temperature)
        if temperature is None:
            self.telemetry.pop("cpu_temperature_c", None)
        else:
            self.telemetry["cpu_temperature_c"] = round(temperature, 1)
        self.telemetry["throttled"] = 1.0 if self.governor.throttled else 0.0
        self.telemetry["interval_scale"] = scale
        fan = read_fan_state(self.fan_state_file, self.config.fan_state_max_age_s)
        duty = fan.get("duty") if fan else None
        if isinstance(duty, int | float):
            self.telemetry["fan_duty"] = float(duty)
        else:
            self.telemetry.pop("fan_duty", None)

    def stop(self) -> None:
        self.telemetry["interval_scale"] = 1.0

    # the ActionSink protocol: nothing to do per frame, transition or alert
    def on_frame(self, result: object) -> None:
        return None

    def on_transition(self, camera: str, transition: object, detail: dict[str, object]) -> None:
        return None

    def on_alert(self, camera: str, alert: object, result: object, evidence_jpeg: bytes) -> None:
        return None
