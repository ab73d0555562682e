"""Status light, buzzer, relay, button and thermal throttle as action sinks of the service.

:func:`create_sinks` is the wiring entry point (:data:`appliance.service.wiring.SINK_MODULES`):

* a :class:`~appliance.hardware.thermal.ThermalSink` whenever ``hardware.thermal.enabled`` (no
  GPIO needed: CPU temperature, throttle and fan duty to telemetry);
* a :class:`BoardSink` when any GPIO device is configured. gpiozero is imported here, inside the
  function, so ``layerwatch check-config`` and hardware-free runs never load it. A board that
  cannot be set up (no GPIO chip, pin busy) is logged and skipped: the detector keeps running.

What the board does:

============================= ==============================================================
event                         outputs
============================= ==============================================================
service start                 relay armed (its watching state), light "starting", a chirp
any state change              the light shows the most urgent camera's pattern
no analysed frame for long    the light shows "error" (``status_led.error_after_s``)
state folder not writable     the light shows "storage" (disk full; alerts still go out)
confirmed failure (alert)     buzzer alarm; relay countdown of ``alarm.countdown_s``
acknowledge (button, MQTT)    buzzer silent, relay countdown cancelled
test alarm (long press, MQTT) buzzer for ``buzzer.test_s``, light "failure"; relay untouched
relay command (MQTT, API)     coil on/off by hand (cancels a countdown)
service stop                  buzzer silent, relay released (safe state), light off
============================= ==============================================================
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from appliance.decision import CameraState
from appliance.errors import HardwareError
from appliance.hardware.alarm import BuzzerAlarm
from appliance.hardware.button import ButtonCommands
from appliance.hardware.relay import RelayController
from appliance.hardware.status_patterns import ERROR, PATTERNS, STORAGE, most_urgent, show
from appliance.hardware.thermal import ThermalSink
from appliance.service.commands import Command, CommandKind

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.decision import Alert, Transition
    from appliance.service.pipeline import ActionSink, FrameResult
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.5  # how often the board's own thread re-checks for the error pattern


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    hardware = config.hardware
    sinks: list[ActionSink] = []
    if hardware.thermal.enabled:
        sinks.append(ThermalSink(hardware.thermal, hardware.fan, context.telemetry))
    if not hardware.any_device:
        return sinks
    from appliance.hardware.board import LayerwatchBoard  # imports gpiozero

    try:
        board = LayerwatchBoard(hardware)
    except HardwareError as exc:
        logger.error("GPIO board unavailable, running without light, buzzer, relay and button: %s", exc)
        return sinks
    sinks.append(BoardSink(board, config, context))
    return sinks


class BoardSink:
    """Drives one :class:`~appliance.hardware.board.LayerwatchBoard` from the service's events."""

    def __init__(
        self,
        board: Any,
        config: LayerwatchConfig,
        context: ServiceContext,
        clock: Callable[[], float] = time.monotonic,
    ):
        hardware = config.hardware
        self.board = board
        self.context = context
        self.clock = clock
        self.analysis_interval_s = config.service.analysis_interval_s
        self.led = board.device("status_led")
        self.rgb = bool(getattr(board, "rgb", False))
        self.error_after_s = hardware.status_led.error_after_s if hardware.status_led else 60.0
        self.test_s = hardware.buzzer.test_s if hardware.buzzer else 3.0
        buzzer, relay, button = board.device("buzzer"), board.device("relay"), board.device("button")
        self.alarm = (
            BuzzerAlarm(buzzer, hardware.buzzer, config.alarm.buzzer_max_s)
            if buzzer is not None and hardware.buzzer is not None
            else None
        )
        self.relay = (
            RelayController(relay, hardware.relay, config.alarm.countdown_s)
            if relay is not None and hardware.relay is not None
            else None
        )
        self.button = (
            ButtonCommands(button, hardware.button, context.commands, self._button_stage, self._button_sent)
            if button is not None and hardware.button is not None
            else None
        )
        now = clock()
        self.states: dict[str, str] = {camera: CameraState.STARTING.value for camera in context.cameras}
        self.progress: dict[str, float] = {camera: now for camera in context.cameras}
        self.shown: str | None = None
        self.test_until = 0.0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._stopped = False

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self.relay is not None:
            self.relay.arm()
        now = self.clock()
        for camera in self.progress:
            self.progress[camera] = now
        self.refresh()
        if self.alarm is not None:
            self.alarm.chirp()
        self._watcher = threading.Thread(target=self._watch, name="board-status", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """Silence, release the relay, free the pins. Safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=2.0)
        if self.button is not None:
            self.button.close()
        if self.alarm is not None:
            self.alarm.close()
        if self.relay is not None:
            self.relay.release()
        self.board.close()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            try:
                self.refresh()
            except Exception as exc:
                logger.debug("status refresh failed: %s", exc)

    # -- the status light ------------------------------------------------------------------
    def current_state(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        if now < self.test_until:
            return CameraState.FAILURE.value
        scale = max(1.0, self.context.telemetry.get("interval_scale", 1.0))
        silent_after = self.error_after_s + self.analysis_interval_s * scale
        with self._lock:
            states = [
                ERROR
                if state != CameraState.CAMERA_OFFLINE.value and now - self.progress[camera] > silent_after
                else state
                for camera, state in self.states.items()
            ]
        storage = getattr(self.context, "storage", None)
        if storage is not None and storage.state() != "ok":
            states.append(STORAGE)  # a full disk: alerts still go out, but the user must free space
        return most_urgent(states)

    def refresh(self) -> None:
        with self._lock:
            if self._stopped or self.led is None:
                return
            state = self.current_state()
            if state != self.shown:
                show(self.led, PATTERNS[state], self.rgb)
                if state in (ERROR, STORAGE) or self.shown in (ERROR, STORAGE):
                    logger.log(logging.WARNING if state == ERROR else logging.INFO, "status light: %s", state)
                self.shown = state

    def _seen(self, camera: str, state: str) -> None:
        with self._lock:
            self.states[camera] = state
            self.progress[camera] = self.clock()
        self.refresh()

    # -- ActionSink ------------------------------------------------------------------------
    def on_frame(self, result: FrameResult) -> None:
        self._seen(result.camera, result.state.value)

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        self._seen(camera, transition.state.value)

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        if self.alarm is not None:
            self.alarm.sound(reason=f"alarm for camera {camera} (alert {alert.id})")
        if self.relay is not None:
            self.relay.start_countdown(camera)

    def on_tick(self, now: float) -> None:
        self.refresh()

    def on_command(self, command: Command) -> None:
        if command.kind == CommandKind.ACKNOWLEDGE:
            if self.alarm is not None:
                self.alarm.silence("acknowledge")
            if self.relay is not None:
                self.relay.cancel(command.camera)
        elif command.kind == CommandKind.SETTINGS and self.relay is not None:
            if "countdown_s" in (command.value or {}):  # the console's settings: the next countdown
                self.relay.countdown_s = float(command.value["countdown_s"])
        elif command.kind == CommandKind.TEST_ALARM:
            logger.info("test alarm from %s for %.1f s", command.origin, self.test_s)
            self.test_until = self.clock() + self.test_s
            if self.alarm is not None:
                self.alarm.sound(self.test_s, reason="test alarm")
            self.refresh()
        elif command.kind == CommandKind.RELAY and self.relay is not None:
            self.relay.manual(bool(command.value))

    # -- button feedback -------------------------------------------------------------------
    def _button_stage(self, stage: str) -> None:
        if self.alarm is not None and not self.alarm.sounding:
            self.alarm.chirp()

    def _button_sent(self, kind: CommandKind) -> None:
        if kind == CommandKind.ACKNOWLEDGE and self.alarm is not None:
            self.alarm.silence("button")
