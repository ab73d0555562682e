"""Helpers shared by the hardware tests (no tests here): mock pin factories, configs, pin histories."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin

from appliance.config.model import LayerwatchConfig
from appliance.service.commands import CommandQueue
from appliance.service.wiring import ServiceContext


def mock_factory() -> MockFactory:
    """A fresh mock factory whose pins all support PWM (RGBLED, TonalBuzzer, PWMOutputDevice)."""
    return MockFactory(pin_class=MockPWMPin)


def layerwatch_config(
    hardware: dict[str, Any], alarm: dict[str, Any] | None = None, **extra: Any
) -> LayerwatchConfig:
    tree: dict[str, Any] = {
        "cameras": [{"name": "printer", "source": {"type": "replay", "path": "clip.mp4"}}],
        "hardware": {"thermal": {"enabled": False}, **hardware},
        "alarm": alarm or {"countdown_s": 0.2, "buzzer_max_s": 0.5},
        **extra,
    }
    return LayerwatchConfig.model_validate(tree)


def service_context(tmp_path: Path, cameras: list[str] | None = None) -> ServiceContext:
    return ServiceContext(
        commands=CommandQueue(),
        state_of=lambda camera: {},
        cameras=cameras or ["printer"],
        state_dir=tmp_path,
    )


def runs(pin: Any) -> list[tuple[float, float]]:
    """A mock pin's history as (state, seconds it lasted); the last, still running, state is left out."""
    states = pin.states
    return [(float(states[i].state), states[i + 1].timestamp) for i in range(len(states) - 1)]


def wait_until(condition: Callable[[], bool], timeout: float = 3.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
