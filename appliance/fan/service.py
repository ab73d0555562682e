"""The ``layerwatch fan`` loop (systemd unit ``layerwatch-fan.service``).

Every ``fan.interval_s`` seconds: read the CPU temperature (``hardware.thermal.sensor_path``,
millidegrees), turn it into a duty through :class:`~appliance.fan.curve.FanCurve`, kick-start a
fan that is standing still (``fan.kick_percent`` for ``fan.kick_s``), drive the backend and write
``fan.state_file`` (JSON: ``duty`` 0.0-1.0, ``temperature_c``, ``sensor_ok``, ``backend``, ``time``),
which the detector reads into its telemetry as ``fan_duty``.

If the temperature cannot be read the fan runs at **full speed** until it can again. The service
reads only the ``[hardware]`` table of the configuration, so a mistake elsewhere in the file (a
camera URL) never stops the cooling. ``READY=1`` is sent after the first reading, ``WATCHDOG=1``
from the loop itself (the loop wakes often enough for ``WatchdogSec=``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from appliance.config.hardware import FanConfig, HardwareConfig
from appliance.config.loader import read_toml, validation_problems
from appliance.config.model import DEFAULT_CONFIG_PATH
from appliance.errors import ConfigError, HardwareError
from appliance.fan.backends import FanBackend, open_backend
from appliance.fan.curve import FanCurve
from appliance.hardware.thermal import read_cpu_temperature
from appliance.service.systemd_notify import SystemdNotifier

logger = logging.getLogger(__name__)


def load_hardware_config(path: Path | None, environ: Mapping[str, str] | None = None) -> HardwareConfig:
    """Only the ``[hardware]`` table of the config file (defaults if the file does not exist)."""
    environ = os.environ if environ is None else environ
    if path is None:
        path = Path(environ.get("LAYERWATCH_CONFIG") or DEFAULT_CONFIG_PATH)
        if not path.exists():
            return HardwareConfig()
    tree = read_toml(path)
    table = tree.get("hardware", {})
    if not isinstance(table, dict):
        raise ConfigError([("hardware", "must be a table")])
    try:
        return HardwareConfig.model_validate(table)
    except ValidationError as exc:
        problems = validation_problems(exc, {})
        prefixed = [(f"hardware.{p}" if p != "(top level)" else "hardware", m) for p, m in problems]
        raise ConfigError(prefixed) from None


@dataclass
class FanReading:
    temperature_c: float | None
    target: float  # what the curve asks for (1.0 without a reading)
    duty: float  # what the fan got (the kick can be more)
    kicking: bool

    def to_json(self, backend: str) -> dict[str, object]:
        return {
            "duty": round(self.duty, 3),
            "target": round(self.target, 3),
            "temperature_c": None if self.temperature_c is None else round(self.temperature_c, 1),
            "sensor_ok": self.temperature_c is not None,
            "kicking": self.kicking,
            "backend": backend,
            "time": round(time.time(), 1),
        }


class FanController:
    """One control step at a time; ``clock`` is injectable for the kick-start timing."""

    def __init__(
        self,
        fan: FanConfig,
        sensor_path: Path,
        backend: FanBackend,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = fan
        self.sensor_path = sensor_path
        self.backend = backend
        self.clock = clock
        self.curve = FanCurve(fan.curve, fan.hysteresis_c, fan.min_duty_percent)
        self.duty = 1.0  # every backend starts at full speed
        self.kick_until = 0.0
        self.sensor_ok: bool | None = None
        self.last: FanReading | None = None

    def read_temperature(self) -> float | None:
        try:
            temperature = read_cpu_temperature(self.sensor_path)
        except (OSError, ValueError) as exc:
            if self.sensor_ok is not False:
                logger.error("temperature unreadable (%s: %s): fan at full speed", self.sensor_path, exc)
            self.sensor_ok = False
            return None
        if self.sensor_ok is False:
            logger.info("temperature readable again: %.1f °C", temperature)
        self.sensor_ok = True
        return temperature

    def step(self) -> float:
        """Read, decide, drive, remember; returns the seconds until the next step is due."""
        now = self.clock()
        temperature = self.read_temperature()
        target = 1.0 if temperature is None else self.curve.duty(temperature)
        kick = self.config.kick_percent / 100.0
        if target > 0 and self.duty == 0 and self.config.kick_s > 0 and target < kick:
            self.kick_until = now + self.config.kick_s
            logger.info("fan kick-start: %.0f %% for %.1f s", kick * 100, self.config.kick_s)
        kicking = target > 0 and now < self.kick_until
        duty = max(target, kick) if kicking else target
        if not kicking:
            self.kick_until = 0.0
        if duty != self.duty:
            logger.debug("fan %.0f %% -> %.0f %% at %s °C", self.duty * 100, duty * 100, temperature)
        self.backend.set(duty)
        self.duty = duty
        self.last = FanReading(temperature, target, duty, kicking)
        if kicking:
            return max(0.0, min(self.config.interval_s, self.kick_until - now))
        return self.config.interval_s

    def write_state(self, path: Path) -> None:
        if self.last is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.tmp")
            temporary.write_text(json.dumps(self.last.to_json(self.backend.name)) + "\n")
            temporary.replace(path)
        except OSError as exc:
            logger.debug("fan state file %s not written: %s", path, exc)


def run_fan(
    hardware: HardwareConfig,
    stop: threading.Event,
    notifier: SystemdNotifier | None = None,
    backend: FanBackend | None = None,
    max_steps: int | None = None,
) -> int:
    """Run the fan loop until ``stop`` is set; returns the exit code (0 also when no fan exists)."""
    notifier = notifier or SystemdNotifier()
    if backend is None:
        try:
            backend = open_backend(hardware)
        except HardwareError as exc:
            logger.error("%s", exc)
            return 1
    if backend is None:
        logger.info("no fan configured or found (fan_pin, %s): nothing to do", hardware.fan.sysfs_path)
        notifier.ready("no fan")
        return 0
    controller = FanController(hardware.fan, hardware.thermal.sensor_path, backend)
    # wake at least twice per WatchdogSec=, whatever fan.interval_s says
    watchdog_s = notifier.watchdog_interval_s or math.inf
    steps = 0
    logger.info("fan control on %s, every %.1f s", backend.name, hardware.fan.interval_s)
    try:
        while not stop.is_set():
            wait = controller.step()
            controller.write_state(hardware.fan.state_file)
            reading = controller.last
            status = f"fan {controller.duty * 100:.0f} %" + (
                f" at {reading.temperature_c:.1f} °C" if reading and reading.temperature_c is not None else
                " (no temperature: full speed)"
            )  # fmt: skip
            if steps == 0:
                notifier.ready(status)
            notifier.status(status)
            notifier.watchdog()
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
            stop.wait(min(wait, watchdog_s))
    except HardwareError as exc:
        logger.error("fan control failed: %s", exc)
        return 1
    finally:
        notifier.stopping()
        backend.close()
    return 0
