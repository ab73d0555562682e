"""CPU temperature to telemetry and the analysis throttle (with hysteresis), from a fake thermal file;
the fan's state file into telemetry; create_sinks without GPIO devices never imports gpiozero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.config.hardware import FanConfig, ThermalConfig
from appliance.hardware.thermal import ThermalGovernor, ThermalSink, read_cpu_temperature, read_fan_state


def _sink(tmp_path: Path, **thermal) -> tuple[ThermalSink, Path, dict[str, float]]:
    sensor = tmp_path / "temp"
    config = ThermalConfig(sensor_path=sensor, throttle_above_c=75, throttle_below_c=68, **thermal)
    telemetry: dict[str, float] = {}
    return ThermalSink(config, FanConfig(state_file=tmp_path / "fan.json"), telemetry), sensor, telemetry


def test_reads_millidegrees(tmp_path: Path):
    sensor = tmp_path / "temp"
    sensor.write_text("48312\n")
    assert read_cpu_temperature(sensor) == pytest.approx(48.312)
    sensor.write_text("52\n")  # a driver that reports whole degrees
    assert read_cpu_temperature(sensor) == 52
    sensor.write_text("garbage")
    with pytest.raises(ValueError):
        read_cpu_temperature(sensor)


def test_governor_hysteresis():
    governor = ThermalGovernor(throttle_above_c=75, throttle_below_c=68, scale=2.5)
    assert [governor.update(t) for t in (60, 74.9, 75, 72, 68, 67.9, 74)] == [1, 1, 2.5, 2.5, 2.5, 1, 1]
    governor.update(80)
    assert governor.update(None) == 2.5  # unknown temperature: keep the last decision


def test_sink_writes_telemetry_and_throttles_when_hot(tmp_path: Path):
    sink, sensor, telemetry = _sink(tmp_path, interval_scale=3.0)
    sensor.write_text("50000")
    sink.start()
    assert telemetry == {"cpu_temperature_c": 50.0, "throttled": 0.0, "interval_scale": 1.0}
    sensor.write_text("76500")
    sink.on_tick(0)
    assert telemetry["throttled"] == 1.0 and telemetry["interval_scale"] == 3.0
    sensor.write_text("70000")
    sink.on_tick(1)
    assert telemetry["interval_scale"] == 3.0, "hysteresis: still hot until below 68 °C"
    sensor.write_text("65000")
    sink.on_tick(2)
    assert telemetry["interval_scale"] == 1.0 and telemetry["cpu_temperature_c"] == 65.0
    sink.stop()
    assert telemetry["interval_scale"] == 1.0


def test_unreadable_sensor_drops_the_temperature(tmp_path: Path):
    sink, _sensor, telemetry = _sink(tmp_path)
    sink.on_tick(0)  # the file does not exist
    assert "cpu_temperature_c" not in telemetry and telemetry["interval_scale"] == 1.0


def test_fan_state_file_is_read_while_fresh(tmp_path: Path):
    sink, sensor, telemetry = _sink(tmp_path, fan_state_max_age_s=10)
    sensor.write_text("55000")
    state = tmp_path / "fan.json"
    state.write_text(json.dumps({"duty": 0.42, "temperature_c": 55.0}))
    sink.on_tick(0)
    assert telemetry["fan_duty"] == 0.42
    old = time.time() - 60
    os.utime(state, (old, old))
    sink.on_tick(1)
    assert "fan_duty" not in telemetry, "a stale file (fan service gone) is ignored"
    assert read_fan_state(tmp_path / "missing.json", 10) is None
    state.write_text("not json")
    assert read_fan_state(state, 10) is None


def test_create_sinks_without_devices_does_not_import_gpiozero(tmp_path: Path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from appliance.config.model import LayerwatchConfig\n"
        "from appliance.hardware.board_sink import create_sinks\n"
        "from appliance.service.commands import CommandQueue\n"
        "from appliance.service.wiring import ServiceContext\n"
        "config = LayerwatchConfig.model_validate({'hardware': {'thermal': {'sensor_path': sys.argv[1]}}})\n"
        "context = ServiceContext(CommandQueue(), lambda c: {}, [], Path('.'))\n"
        "sinks = create_sinks(config, context)\n"
        "for sink in sinks: sink.start()\n"
        "assert [type(s).__name__ for s in sinks] == ['ThermalSink'], sinks\n"
        "assert context.telemetry['cpu_temperature_c'] == 61.5, context.telemetry\n"
        "assert 'gpiozero' not in sys.modules, 'gpiozero was imported'\n"
    )
    sensor = tmp_path / "temp"
    sensor.write_text("61500\n")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(sensor)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
