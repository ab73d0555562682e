"""layerwatch-fan: the curve, hysteresis, minimum duty, kick-start, full speed without a sensor, the
gpiozero PWM backend on a MockPWMPin, the Jetson sysfs backend on a fake node, the state file, and
`layerwatch fan` as systemd runs it (READY/WATCHDOG, SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from appliance.config.hardware import FanConfig, HardwareConfig
from appliance.errors import ConfigError
from appliance.fan.backends import GpioPwmFan, SysfsPwmFan, choose_backend, open_backend
from appliance.fan.curve import FanCurve
from appliance.fan.service import FanController, load_hardware_config, run_fan
from appliance.service.systemd_notify import SystemdNotifier
from tests.service_harness import NotifyListener
from tests.test_hardware_support import FakeClock, mock_factory

CURVE = [(45.0, 0.0), (50.0, 30.0), (65.0, 60.0), (75.0, 100.0)]


class RecordingFan:
    name = "test"

    def __init__(self) -> None:
        self.duties: list[float] = []
        self.closed = False

    def set(self, duty: float) -> None:
        self.duties.append(duty)

    def close(self) -> None:
        self.closed = True


def test_curve_interpolates_and_is_flat_outside():
    curve = FanCurve(CURVE, hysteresis_c=0, min_duty_percent=0)
    assert curve.raw(20) == 0 and curve.raw(45) == 0
    assert curve.raw(47.5) == pytest.approx(0.15)
    assert curve.raw(57.5) == pytest.approx(0.45)
    assert curve.raw(75) == 1.0 and curve.raw(95) == 1.0


def test_minimum_duty_raises_small_duties_but_not_zero():
    curve = FanCurve(CURVE, hysteresis_c=0, min_duty_percent=25)
    assert curve.duty(40) == 0
    assert curve.duty(46) == pytest.approx(0.25)  # the curve says 6 %: the fan would stall
    assert curve.duty(60) == pytest.approx(0.5)


def test_hysteresis_lags_a_falling_temperature():
    curve = FanCurve(CURVE, hysteresis_c=3, min_duty_percent=0)
    assert curve.duty(60) == pytest.approx(0.5)
    assert curve.duty(58) == pytest.approx(0.5), "within 3 °C below: unchanged"
    assert curve.duty(56) == pytest.approx(curve.raw(59)), "follows at temperature + 3 °C"
    assert curve.duty(57) == pytest.approx(curve.raw(59)), "a small rise inside the band changes nothing"
    assert curve.duty(62) == pytest.approx(curve.raw(62)), "a rise above the reference is followed at once"
    # switching off: on at 46 °C, still on at 43 °C, off below 42 °C
    curve = FanCurve(CURVE, hysteresis_c=3, min_duty_percent=25)
    assert curve.duty(46) > 0
    assert curve.duty(43) > 0
    assert curve.duty(41.9) == 0


def _controller(tmp_path: Path, **fan) -> tuple[FanController, Path, RecordingFan, FakeClock]:
    sensor = tmp_path / "temp"
    backend = RecordingFan()
    clock = FakeClock()
    config = FanConfig(curve=CURVE, hysteresis_c=3, min_duty_percent=25, kick_s=0.5, interval_s=2, **fan)
    return FanController(config, sensor, backend, clock=clock), sensor, backend, clock


def test_full_speed_when_the_sensor_fails(tmp_path: Path):
    controller, sensor, backend, _ = _controller(tmp_path)
    sensor.write_text("40000")
    controller.step()
    assert backend.duties[-1] == 0
    sensor.unlink()  # the thermal file disappears
    controller.step()
    assert backend.duties[-1] == 1.0 and controller.last and controller.last.temperature_c is None
    sensor.write_text("not a number")
    controller.step()
    assert backend.duties[-1] == 1.0
    sensor.write_text("40000")
    controller.step()
    assert backend.duties[-1] == 0, "back on the curve once it reads again"


def test_kick_start_from_standstill(tmp_path: Path):
    controller, sensor, backend, clock = _controller(tmp_path, kick_percent=100)
    sensor.write_text("40000")
    assert controller.step() == 2  # off; next reading in interval_s
    sensor.write_text("47000")
    wait = controller.step()
    assert backend.duties[-1] == 1.0 and controller.last and controller.last.kicking
    assert wait == pytest.approx(0.5), "wake when the kick is over"
    clock.advance(0.5)
    controller.step()
    assert backend.duties[-1] == pytest.approx(0.25) and not controller.last.kicking
    # already turning: no kick
    sensor.write_text("52000")
    clock.advance(2)
    controller.step()
    assert backend.duties[-1] == pytest.approx(controller.curve.raw(52))


def test_starts_at_full_speed_so_the_first_low_duty_needs_no_kick(tmp_path: Path):
    controller, sensor, backend, _ = _controller(tmp_path)
    sensor.write_text("47000")
    controller.step()
    assert backend.duties == [pytest.approx(0.25)]


def test_state_file(tmp_path: Path):
    controller, sensor, _backend, _ = _controller(tmp_path)
    sensor.write_text("58000")
    controller.step()
    state_file = tmp_path / "run" / "fan.json"
    controller.write_state(state_file)
    state = json.loads(state_file.read_text())
    assert state["temperature_c"] == 58.0 and state["sensor_ok"] is True
    assert state["duty"] == pytest.approx(controller.curve.raw(58), abs=1e-3) and state["backend"] == "test"


def test_gpio_backend_on_a_mock_pwm_pin():
    factory = mock_factory()
    fan = GpioPwmFan(18, active_high=True, frequency_hz=100, pin_factory=factory)
    pin = factory.pin(18)
    assert pin.state == 1.0 and pin.frequency == 100, "starts at full speed"
    fan.set(0.4)
    assert pin.state == pytest.approx(0.4)
    fan.close()
    fan.close()
    assert pin.function == "input"


def test_sysfs_backend_writes_0_to_255(tmp_path: Path):
    node = tmp_path / "target_pwm"
    node.write_text("0\n")
    fan = SysfsPwmFan(node, 255)
    assert node.read_text() == "255\n"
    fan.set(0.3)
    assert node.read_text() == "76\n"
    fan.set(0)
    assert node.read_text() == "0\n"
    fan.close()
    assert node.read_text() == "255\n", "left at full speed when the service stops"


def test_backend_choice(tmp_path: Path):
    node = tmp_path / "target_pwm"
    assert choose_backend(HardwareConfig(fan_pin=18)) == "gpio"
    assert choose_backend(HardwareConfig(fan=FanConfig(sysfs_path=node))) == "none"
    node.write_text("0")
    assert choose_backend(HardwareConfig(fan=FanConfig(sysfs_path=node))) == "sysfs"
    backend = open_backend(HardwareConfig(fan=FanConfig(sysfs_path=node)))
    assert isinstance(backend, SysfsPwmFan)
    assert open_backend(HardwareConfig(fan=FanConfig(backend="none"))) is None


def test_loads_only_the_hardware_table(tmp_path: Path):
    config = tmp_path / "layerwatch.toml"
    config.write_text('[hardware]\nfan_pin = 18\n[[cameras]]\nname = "Bad Name!"\n')
    assert load_hardware_config(config).fan_pin == 18, "a camera mistake must not stop the cooling"
    config.write_text("[hardware]\nfan_pin = 99\n")
    with pytest.raises(ConfigError) as info:
        load_hardware_config(config)
    assert info.value.problems[0][0] == "hardware.fan_pin"
    assert (
        load_hardware_config(None, environ={"LAYERWATCH_CONFIG": str(tmp_path / "no.toml")})
        == HardwareConfig()
    )


def test_run_loop_sends_ready_and_stops(tmp_path: Path):
    listener = NotifyListener(tmp_path / "notify.sock")
    sensor = tmp_path / "temp"
    sensor.write_text("60000")
    hardware = HardwareConfig(
        fan=FanConfig(backend="none", interval_s=0.05, state_file=tmp_path / "fan.json"),
        thermal={"sensor_path": sensor},
    )
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "200000"})
    backend = RecordingFan()
    stop = threading.Event()
    thread = threading.Thread(target=run_fan, args=(hardware, stop, notifier, backend))
    thread.start()
    try:
        listener.wait_for("READY=1", timeout=5)
        listener.wait_for("WATCHDOG=1", timeout=5)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    assert backend.closed and backend.duties[0] == pytest.approx(0.5)
    assert json.loads((tmp_path / "fan.json").read_text())["duty"] == pytest.approx(0.5)


def test_layerwatch_fan_command_under_systemd(tmp_path: Path):
    """`layerwatch fan` with a mock PWM pin: READY, the state file, clean exit on SIGTERM."""
    listener = NotifyListener(tmp_path / "notify.sock")
    sensor = tmp_path / "temp"
    sensor.write_text("90000")
    config = tmp_path / "layerwatch.toml"
    config.write_text(
        f"[hardware]\nfan_pin = 18\n[hardware.fan]\ninterval_s = 0.1\n"
        f'state_file = "{tmp_path / "fan.json"}"\n'
        f'[hardware.thermal]\nsensor_path = "{sensor}"\n'
    )
    env = {
        **os.environ,
        "GPIOZERO_PIN_FACTORY": "mock",
        "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin",
        "NOTIFY_SOCKET": str(listener.path),
        "WATCHDOG_USEC": "2000000",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "fan", "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        listener.wait_for("READY=1", timeout=30)
        assert any("fan 100 %" in m for _, m in listener.messages)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0  # ~0.2 s when idle; generous for a loaded CI machine
        listener.wait_for("STOPPING=1", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    state = json.loads((tmp_path / "fan.json").read_text())
    assert state == {**state, "duty": 1.0, "temperature_c": 90.0, "backend": "gpio"}


def test_layerwatch_fan_once_with_a_broken_config_exits_78(tmp_path: Path):
    config = tmp_path / "layerwatch.toml"
    config.write_text("[hardware]\nfan_pin = 18\nbuzzer = { pin = 18 }\n")
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "fan", "--once", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 78 and "used twice" in proc.stderr


def test_layerwatch_fan_once_with_pin_factory_mock_drives_a_mock_pwm_pin(tmp_path: Path):
    """`pin_factory = "mock"` in the file (no GPIOZERO_* variables): the fan gets a mock PWM pin."""
    sensor = tmp_path / "temp"
    sensor.write_text("40000")
    config = tmp_path / "layerwatch.toml"
    config.write_text(
        f'[hardware]\npin_factory = "mock"\nfan_pin = 18\n'
        f'[hardware.fan]\nstate_file = "{tmp_path / "f.json"}"\n'
        f'[hardware.thermal]\nsensor_path = "{sensor}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPIOZERO_")}
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "fan", "--once", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    reading = json.loads(proc.stdout)
    assert reading["backend"] == "gpio" and reading["temperature_c"] == 40.0 and 0 <= reading["duty"] <= 1


def test_a_pin_without_pwm_gives_a_reason():
    from gpiozero.pins.mock import MockFactory

    from appliance.errors import HardwareError

    with pytest.raises(HardwareError, match=r"BCM 18 cannot start: PinPWMUnsupported \(the pin factory"):
        GpioPwmFan(18, active_high=True, frequency_hz=25.0, pin_factory=MockFactory())
