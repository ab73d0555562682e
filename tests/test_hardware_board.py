"""The composite board on gpiozero mock pins: safe initial values, idempotent close, and the status
light's pattern for every state (colour and rhythm read back from the pins' histories)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gpiozero import LED, RGBLED

from appliance.decision import CameraState, Transition
from appliance.errors import HardwareError
from appliance.hardware.board import LayerwatchBoard
from appliance.hardware.board_sink import BoardSink
from appliance.hardware.status_patterns import ERROR, PATTERNS, PRIORITY, STORAGE, most_urgent, show
from tests.test_hardware_support import FakeClock, layerwatch_config, mock_factory, runs, service_context

FULL = {
    "status_led": {"red": 5, "green": 6, "blue": 13, "active_high": False},
    "buzzer": {"pin": 17},
    "relay": {"pin": 27, "active_high": False},
    "button": {"pin": 26},
}


def test_outputs_start_in_their_safe_state():
    factory = mock_factory()
    config = layerwatch_config(FULL)
    with LayerwatchBoard(config.hardware, pin_factory=factory) as board:
        # common-anode LED and active-low relay: dark and released means the pins are HIGH
        assert [factory.pin(p).state for p in (5, 6, 13)] == [1, 1, 1]
        assert factory.pin(17).state == 0  # buzzer silent
        assert factory.pin(27).state == 1  # relay coil released
        # the first entry is the mock pin's reading before it became an output; after that no output
        # ever passed through its active level (no glitch of the relay or LED at start)
        for pin, inactive in ((5, 1), (6, 1), (13, 1), (17, 0), (27, 1)):
            assert all(s.state == inactive for s in factory.pin(pin).states[1:]), pin
        assert board.device("button").is_pressed is False
        assert board.device("fan") is None


def test_close_is_idempotent_and_releases_the_relay():
    factory = mock_factory()
    board = LayerwatchBoard(layerwatch_config(FULL).hardware, pin_factory=factory)
    board.device("relay").on()
    assert factory.pin(27).state == 0  # active-low: energised
    board.close()
    assert board.closed
    relay_pin = factory.pin(27)
    # ... energised (0), driven to released (1), then freed: an input, which the mock reads as 0
    assert [s.state for s in relay_pin.states][-3:] == [0, 1, 0], "released before the pin was freed"
    assert relay_pin.function == "input"
    board.close()  # a second close does nothing
    assert board.device("relay") is None


def test_pin_in_use_is_a_hardware_error_and_frees_what_was_claimed():
    factory = mock_factory()
    blocker = LED(27, pin_factory=factory)
    with pytest.raises(HardwareError):
        LayerwatchBoard(layerwatch_config(FULL).hardware, pin_factory=factory)
    blocker.close()
    LayerwatchBoard(layerwatch_config(FULL).hardware, pin_factory=factory).close()  # LED pins were freed


def test_board_needs_a_device():
    with pytest.raises(HardwareError):
        LayerwatchBoard(layerwatch_config({}).hardware, pin_factory=mock_factory())


def _first_on_run(runs_: list[tuple[float, float]]) -> float | None:
    """Duration of the first complete lit run after the initial state."""
    for state, seconds in runs_[1:]:
        if state == 1:
            return seconds
    return None


def test_every_state_has_its_rgb_pattern():
    """All nine patterns at once on nine RGB LEDs (one wait covers every rhythm)."""
    factory = mock_factory()
    states = list(PATTERNS)
    assert len(states) == 9 and ERROR in states and STORAGE in states
    leds = {}
    for i, state in enumerate(states):
        pins = (1 + 3 * i, 2 + 3 * i, 3 + 3 * i)  # GPIO1..27: nine RGB LEDs
        leds[state] = (RGBLED(*pins, pwm=False, pin_factory=factory), pins)
    for _led, pins in leds.values():
        for pin in pins:
            factory.pin(pin).clear_states()
    for state, (led, _) in leds.items():
        show(led, PATTERNS[state], rgb=True)
    time.sleep(2.2)
    try:
        for state, (_, pins) in leds.items():
            pattern = PATTERNS[state]
            for channel, pin in zip(pattern.colour, pins, strict=True):
                history = runs(factory.pin(pin))
                lit = [s for s in (factory.pin(pin).states) if s.state == 1]
                if channel == 0:
                    assert not lit, f"{state}: channel on pin {pin} must stay dark"
                    continue
                assert lit, f"{state}: channel on pin {pin} never lit"
                if pattern.steady:
                    assert factory.pin(pin).state == 1 and len(history) <= 1, f"{state} must be steady"
                else:
                    on = _first_on_run(history) if history[0][0] == 0 else history[0][1]
                    if on is None:  # still in the first lit run (paused: 1.9 s)
                        on = pattern.on_s
                    assert on == pytest.approx(pattern.on_s, abs=0.08), f"{state}: lit {on:.3f} s"
                    dark = [sec for st, sec in history[1:] if st == 0]
                    if dark:
                        assert dark[0] == pytest.approx(pattern.off_s, abs=0.08), (
                            f"{state}: dark {dark[0]:.3f}"
                        )
    finally:
        for led, _ in leds.values():
            led.close()


def test_single_led_rhythms_are_all_different():
    rhythms = {(p.on_s, p.off_s) if not p.steady else "steady" for p in PATTERNS.values()}
    assert len(rhythms) == len(PATTERNS), "a single LED must tell every state apart by its rhythm"
    factory = mock_factory()
    led = LED(4, pin_factory=factory)
    try:
        factory.pin(4).clear_states()
        show(led, PATTERNS[CameraState.FAILURE.value], rgb=False)
        time.sleep(0.55)
        history = runs(factory.pin(4))
        assert len(history) >= 4  # 0.1 s on / 0.1 s off
        assert all(sec == pytest.approx(0.1, abs=0.06) for _, sec in history[1:])
        show(led, PATTERNS[CameraState.WATCHING.value], rgb=False)
        assert led.is_lit and factory.pin(4).state == 1
    finally:
        led.close()


def test_most_urgent_state_wins():
    assert most_urgent(["watching", "failure"]) == "failure"
    assert most_urgent(["watching", "camera_offline"]) == "camera_offline"
    assert most_urgent(["paused", "watching"]) == "paused"
    assert most_urgent([]) == "starting"
    assert set(PRIORITY) == set(PATTERNS)


def _transition(state: CameraState) -> Transition:
    return Transition(CameraState.WATCHING, state)


def test_sink_shows_each_transition_and_the_error_pattern(tmp_path: Path):
    factory = mock_factory()
    config = layerwatch_config({"status_led": {"red": 5, "green": 6, "blue": 13, "error_after_s": 5}})
    clock = FakeClock()
    board = LayerwatchBoard(config.hardware, pin_factory=factory)
    sink = BoardSink(board, config, service_context(tmp_path), clock=clock)
    sink.start()
    try:
        assert sink.shown == "starting"
        for state in CameraState:
            sink.on_transition("printer", _transition(state), {})
            assert sink.shown == state.value
        sink.on_transition("printer", _transition(CameraState.WATCHING), {})
        assert board.device("status_led").value == (0, 1, 0)  # steady green
        # nothing analysed for error_after_s + analysis interval: the error pattern
        clock.advance(5 + config.service.analysis_interval_s + 0.1)
        sink.refresh()
        assert sink.shown == ERROR
        # a camera that is offline is not an error (it has its own pattern)
        sink.on_transition("printer", _transition(CameraState.CAMERA_OFFLINE), {})
        clock.advance(100)
        sink.refresh()
        assert sink.shown == "camera_offline"
        # the hot-board throttle stretches the grace period
        sink.on_transition("printer", _transition(CameraState.WATCHING), {})
        sink.context.telemetry["interval_scale"] = 10.0
        clock.advance(5 + config.service.analysis_interval_s + 1)
        sink.refresh()
        assert sink.shown == "watching"
    finally:
        sink.stop()
        sink.stop()  # idempotent
    assert board.closed
    assert [factory.pin(p).state for p in (5, 6, 13)] == [0, 0, 0] or all(
        factory.pin(p).function == "input" for p in (5, 6, 13)
    )


def test_two_cameras_show_the_more_urgent(tmp_path: Path):
    factory = mock_factory()
    config = layerwatch_config({"status_led": {"pin": 4}})
    board = LayerwatchBoard(config.hardware, pin_factory=factory)
    sink = BoardSink(board, config, service_context(tmp_path, ["a", "b"]))
    sink.start()
    try:
        sink.on_transition("a", _transition(CameraState.WATCHING), {})
        assert sink.shown == "starting"  # b has not reported yet
        sink.on_transition("b", _transition(CameraState.SUSPECT), {})
        assert sink.shown == "suspect"
        sink.on_transition("b", _transition(CameraState.WATCHING), {})
        assert sink.shown == "watching"
    finally:
        sink.stop()
