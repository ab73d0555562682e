"""The button on a mock pin: short, long and very long presses become acknowledge, test alarm and
recalibrate on the command queue (driven with pin.drive_low()/drive_high() and a fake clock)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.config.hardware import ButtonConfig
from appliance.decision import Alert
from appliance.hardware.board import LayerwatchBoard
from appliance.hardware.board_sink import BoardSink
from appliance.hardware.button import ButtonCommands, classify
from appliance.service.commands import CommandKind, CommandQueue
from tests.test_hardware_support import (
    FakeClock,
    layerwatch_config,
    mock_factory,
    service_context,
    wait_until,
)

BUTTON = {"pin": 26, "bounce_s": 0, "long_press_s": 3, "very_long_press_s": 10}


@pytest.mark.parametrize(
    ("held", "kind"),
    [
        (0.1, CommandKind.ACKNOWLEDGE),
        (2.99, CommandKind.ACKNOWLEDGE),
        (3.0, CommandKind.TEST_ALARM),
        (9.9, CommandKind.TEST_ALARM),
        (10.0, CommandKind.RECALIBRATE),
        (60.0, CommandKind.RECALIBRATE),
    ],
)
def test_classify(held: float, kind: CommandKind):
    assert classify(held, ButtonConfig(**BUTTON)) == kind


def _press(pin, clock: FakeClock, seconds: float) -> None:
    pin.drive_low()  # pull-up: pressed pulls the pin to ground
    clock.advance(seconds)
    pin.drive_high()


def test_presses_become_commands_with_a_fake_clock():
    factory = mock_factory()
    from gpiozero import Button

    button = Button(26, pull_up=True, bounce_time=None, hold_time=3, pin_factory=factory)
    clock = FakeClock()
    queue = CommandQueue()
    commands = ButtonCommands(button, ButtonConfig(**BUTTON), queue, clock=clock)
    pin = factory.pin(26)
    try:
        _press(pin, clock, 0.2)
        _press(pin, clock, 4.0)
        _press(pin, clock, 12.0)
        sent = queue.drain()
        assert [c.kind for c in sent] == [
            CommandKind.ACKNOWLEDGE,
            CommandKind.TEST_ALARM,
            CommandKind.RECALIBRATE,
        ]
        assert all(c.origin == "button" for c in sent)
        pin.drive_high()  # a release without a press sends nothing
        assert queue.drain() == []
    finally:
        commands.close()
        button.close()


def test_real_hold_gives_feedback_at_each_stage():
    """Short real hold times: the chirp feedback fires at long_press_s and at very_long_press_s."""
    factory = mock_factory()
    from gpiozero import Button

    config = ButtonConfig(pin=26, bounce_s=0, long_press_s=0.1, very_long_press_s=0.25)
    button = Button(26, bounce_time=None, hold_time=config.long_press_s, pin_factory=factory)
    stages: list[str] = []
    queue = CommandQueue()
    commands = ButtonCommands(button, config, queue, feedback=stages.append)
    pin = factory.pin(26)
    try:
        pin.drive_low()
        assert wait_until(lambda: stages == ["long", "very_long"], 2)
        pin.drive_high()
        assert [c.kind for c in queue.drain()] == [CommandKind.RECALIBRATE]
        pin.drive_low()
        time.sleep(0.15)
        pin.drive_high()
        time.sleep(0.2)
        assert stages == ["long", "very_long", "long"], "the very-long timer stops on release"
        assert [c.kind for c in queue.drain()] == [CommandKind.TEST_ALARM]
    finally:
        commands.close()
        button.close()


def test_short_press_on_the_board_silences_the_alarm_at_once(tmp_path: Path):
    factory = mock_factory()
    config = layerwatch_config(
        {"button": BUTTON, "buzzer": {"pin": 17, "alarm_on_s": 0.05, "alarm_off_s": 0.05}},
        alarm={"countdown_s": 5, "buzzer_max_s": 5},
    )
    board = LayerwatchBoard(config.hardware, pin_factory=factory)
    context = service_context(tmp_path)
    sink = BoardSink(board, config, context)
    sink.start()
    try:
        alert = Alert(id="a", camera="printer", score=1, votes=3, window=5, burst_agree=2, burst_frames=2)
        sink.on_alert("printer", alert, None, b"")  # type: ignore[arg-type]
        assert sink.alarm.sounding
        factory.pin(26).drive_low()
        factory.pin(26).drive_high()
        assert not sink.alarm.sounding, "silenced by the button itself, before the loop sees the command"
        assert sink.alarm.silenced_by == "button"
        assert [c.kind for c in context.commands.drain()] == [CommandKind.ACKNOWLEDGE]
        assert sink.relay is None
    finally:
        sink.stop()
    assert factory.pin(26).function == "input"
