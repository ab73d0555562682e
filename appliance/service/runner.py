"""The ``layerwatch run`` service: every camera's pipeline on one analysis thread.

Start-up: load and warm the model, open the sources (network sources connect in the background),
connect MQTT in the background, then loop. ``READY=1`` goes to systemd once every camera has either
analysed its first frame or been found offline; ``WATCHDOG=1`` is sent from the loop itself and
``STATUS=`` carries each camera's state and frame rate.

Each camera is analysed every ``service.analysis_interval_s`` seconds (faster during a verification
burst). ``max_consecutive_errors`` unexpected errors in a row make the loop pause for
``error_backoff_s`` seconds and say so. SIGTERM and SIGINT stop the loop at once (a blocking camera
read is interrupted), sources are closed, MQTT says ``offline``: all within about a second.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from appliance.actions.console import ConsoleSink
from appliance.actions.dispatcher import event_hub
from appliance.config.model import LayerwatchConfig
from appliance.decision import CameraState
from appliance.detector import AnyDetector, load_detector
from appliance.detector.ask_policy import AskPolicy
from appliance.errors import LayerwatchError
from appliance.service.calibration_worker import CalibrationWorker
from appliance.service.command_handling import CommandHandler
from appliance.service.commands import CommandQueue
from appliance.service.pipeline import ActionSink, CameraPipeline
from appliance.service.storage_health import StorageHealth
from appliance.service.systemd_notify import SystemdNotifier
from appliance.service.wiring import ServiceContext, build_judge, build_sinks
from appliance.sources import build_source
from appliance.state_files import clean_leftovers

logger = logging.getLogger(__name__)

LOOP_TICK_S = 0.25  # longest sleep between checks of the stop flag, commands and the watchdog
SINK_TICK_S = 1.0  # how often sinks get on_tick (telemetry, countdowns)
READ_TIMEOUT_S = 1.0  # how long one camera read may wait for a new frame


class StopRequested(Exception):
    """Raised from the signal handler to interrupt a blocking read."""


class Service:
    def __init__(
        self,
        config: LayerwatchConfig,
        print_decisions: bool = False,
        notifier: SystemdNotifier | None = None,
        max_frames: int | None = None,
    ):
        self.config = config
        self.print_decisions = print_decisions
        self.notifier = notifier or SystemdNotifier()
        self.max_frames = max_frames
        self.stop_event = threading.Event()
        #: set by SIGUSR1 (or :meth:`trigger`): in ``service.test_mode`` each analyses one frame per camera
        self.manual_trigger = threading.Event()
        self.pipelines: list[CameraPipeline] = []
        self.detector: AnyDetector | None = None
        self.sinks: list[ActionSink] = []
        self.commands = CommandQueue()
        self.context = ServiceContext(
            commands=self.commands,
            state_of=self._state_of,
            cameras=[c.name for c in config.cameras],
            state_dir=config.service.state_dir,
            storage=StorageHealth(config.service.state_dir),
            ready=threading.Event(),
        )
        #: recalibrations run beside the loop, one at a time (issue 14, defect 4); shares the model's lock
        self.calibration = CalibrationWorker(threading.Lock())
        #: commands from MQTT, the API and the button, applied on the loop's thread between frames
        self.command_handler = CommandHandler(
            self.pipelines, self.commands, self.context, self.calibration, self._call_sinks
        )
        self._last_tick = 0.0
        self.ready = False
        self.consecutive_errors = 0
        self._in_blocking_call = False
        self.started_at = time.monotonic()

    # -- signals ----------------------------------------------------------------------------
    # The handler runs on the main thread between two bytecodes and sets stop_event, which takes the
    # event's lock: the main thread itself must never be inside stop_event.wait() (it would hold that
    # lock at the moment it wakes, and the handler would wait for it forever; found by the fault suite).
    # It sleeps inside _blocking() instead (the handler then raises StopRequested into the sleep) and
    # reads stop_event.is_set(), which takes no lock.
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        self.stop_event.set()
        if self._in_blocking_call:
            raise StopRequested

    @contextmanager
    def _blocking(self) -> Iterator[None]:
        self._in_blocking_call = True
        try:
            if self.stop_event.is_set():
                raise StopRequested
            yield
        finally:
            self._in_blocking_call = False

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGUSR1, lambda signum, frame: self.trigger())

    def trigger(self) -> None:
        """The manual trigger of ``service.test_mode`` (``systemctl kill -s USR1 layerwatch``)."""
        self.manual_trigger.set()

    # -- set-up -----------------------------------------------------------------------------
    def build(self) -> None:
        state_dir = self.config.service.state_dir
        # temp files a SIGKILL or power cut left mid-write (never a complete state file): removed
        clean_leftovers(state_dir)
        # no warm-up runs: the first frame is analysed at once, and READY waits for it
        self.detector = load_detector(self.config.detector, cache_dir=state_dir, warm_up=False)
        self.sinks = [ConsoleSink()] if self.print_decisions else []
        self.sinks += build_sinks(self.config, self.context)
        judge = build_judge(self.config, self.context)
        for camera in self.config.cameras:
            source = build_source(camera.name, camera.source, self.detector.input_size)
            budget = self.config.cloud.budget
            ask = AskPolicy(budget.ask_share, budget.ask_per_hour, budget.ask_half_support)
            pipeline = CameraPipeline(
                camera, source, self.detector, state_dir, self.sinks, judge=judge, ask_policy=ask
            )
            pipeline.model_lock = self.calibration.model_lock
            pipeline.on_frame_read = functools.partial(self.calibration.offer, pipeline)
            pipeline.storage = self.context.storage
            self.pipelines.append(pipeline)
        self.context.storage.listen(event_hub(self.context).emit)  # storage_problem / _ok on MQTT P/event

    def _report_problems(self) -> None:
        """State files found unreadable at start-up: one ``state_file_set_aside`` device event each
        (MQTT ``P/event``; they also stay in the camera's state payload as ``problems``)."""
        hub = event_hub(self.context)
        for pipeline in self.pipelines:
            for problem in pipeline.problems:
                hub.emit("state_file_set_aside", {"camera": pipeline.name, "message": problem})

    def _state_of(self, camera: str) -> dict[str, object]:
        for pipeline in self.pipelines:
            if pipeline.name == camera:
                return pipeline.state_payload()
        return {}

    def status_line(self) -> str:
        parts = [f"{p.name}: {p.state.value} {p.fps:.1f} fps" for p in self.pipelines]
        if self.detector is not None:
            parts.append(self.detector.backend_name)
        parts += self.context.notes
        storage = self.context.storage.summary()
        if storage:
            parts.append(storage)
        return "; ".join(parts)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped (or every finite source ended); returns the exit code."""
        try:
            self.build()
            self._call_sinks("start")
            self._report_problems()
            for pipeline in self.pipelines:
                pipeline.source.open()
            self._loop()
        except StopRequested:
            pass
        finally:
            self.shutdown()
        return 0

    def _loop(self) -> None:
        interval = self.config.service.analysis_interval_s
        # TEST_MODE (the RTSP+Bedrock detector's): nothing is analysed until a manual trigger, then
        # one frame per camera per trigger; `layerwatch test` is the one-shot that exits
        manual = self.config.service.test_mode
        if manual:
            logger.info(
                "test mode: waiting for a manual trigger (SIGUSR1: systemctl kill -s USR1 layerwatch)"
            )
            for pipeline in self.pipelines:
                pipeline.next_due = math.inf
        while not self.stop_event.is_set():
            self.notifier.watchdog()
            self.command_handler.handle()
            self.calibration.apply_finished()
            self._tick()
            active = [p for p in self.pipelines if not p.finished]
            if not active:
                logger.info("every source has ended")
                return
            if manual and self.manual_trigger.is_set():
                self.manual_trigger.clear()
                logger.info("test mode: manual trigger, analysing one frame per camera")
                for pipeline in active:
                    pipeline.next_due = time.monotonic()
            pipeline = min(active, key=lambda p: p.next_due)
            now = time.monotonic()
            if pipeline.next_due > now:
                with self._blocking():  # a signal ends the sleep at once (StopRequested)
                    time.sleep(min(LOOP_TICK_S, pipeline.next_due - now))
                continue
            try:
                with self._blocking():
                    result = pipeline.step(now, read_timeout_s=READ_TIMEOUT_S)
                self.consecutive_errors = 0
            except (StopRequested, KeyboardInterrupt):
                raise
            except Exception as exc:  # one bad frame must not kill the service
                self._count_error(pipeline.name, exc)
                result = None
            # a hot board slows the normal rhythm (never a verification burst): the thermal governor
            # sets context.telemetry["interval_scale"] (1.0 when cool)
            scaled = interval * max(1.0, self.context.telemetry.get("interval_scale", 1.0))
            pipeline.next_due = time.monotonic() + (pipeline.engine.next_interval(scaled) if result else 0.0)
            if manual:
                pipeline.next_due = math.inf
            if result is None and not pipeline.finished and pipeline.state == CameraState.CAMERA_OFFLINE:
                pipeline.next_due = time.monotonic() + LOOP_TICK_S
            self._after_step()
            if self.max_frames is not None and sum(p.analysed for p in self.pipelines) >= self.max_frames:
                return

    def _call_sinks(self, method: str, *args: object) -> None:
        for sink in self.sinks:
            handler = getattr(sink, method, None)
            if handler is None:
                continue
            try:
                handler(*args)
            except Exception as exc:  # a broken channel must not stop the others
                logger.error("%s.%s failed: %s", type(sink).__name__, method, exc, exc_info=True)

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_tick >= SINK_TICK_S:
            self._last_tick = now
            self._call_sinks("on_tick", now)
            self.context.storage.check(now)
            if self.ready:
                self.notifier.status(self.status_line())  # storage problems show without a frame too

    def _after_step(self) -> None:
        if not self.ready and all(
            p.online_once or p.finished or p.state == CameraState.CAMERA_OFFLINE for p in self.pipelines
        ):
            self.ready = True
            ready_s = time.monotonic() - self.started_at
            logger.info("ready after %.2f s: %s", ready_s, self.status_line())
            self.notifier.ready(self.status_line())
            if self.context.ready is not None:
                self.context.ready.set()
        self.notifier.status(self.status_line())

    def _count_error(self, camera: str, exc: Exception) -> None:
        self.consecutive_errors += 1
        level = logging.WARNING if isinstance(exc, LayerwatchError) else logging.ERROR
        logger.log(
            level, "camera %s: analysis failed (%d in a row): %s", camera, self.consecutive_errors, exc,
            exc_info=level == logging.ERROR,
        )  # fmt: skip
        limit = self.config.service.max_consecutive_errors
        if self.consecutive_errors >= limit:
            pause = self.config.service.error_backoff_s
            logger.error("%d errors in a row: pausing analysis for %.0f s", self.consecutive_errors, pause)
            self.notifier.status(
                f"{self.consecutive_errors} errors in a row, backing off {pause:.0f} s", force=True
            )
            deadline = time.monotonic() + pause
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                self.notifier.watchdog()
                self._tick()  # the MQTT state keeps being republished during the pause
                with self._blocking():
                    time.sleep(LOOP_TICK_S)
            self.consecutive_errors = 0

    def shutdown(self) -> None:
        self.notifier.stopping()
        self.calibration.stop()  # a calibration in progress is abandoned: nothing written, old one kept
        for pipeline in self.pipelines:
            try:
                pipeline.source.close()
            except Exception as exc:
                logger.warning("camera %s: close failed: %s", pipeline.name, exc)
        self._call_sinks("stop")
        logger.info("stopped")

    # -- test mode --------------------------------------------------------------------------
    def test_once(self) -> list[dict[str, object]]:
        """TEST_MODE: analyse one frame per camera, return the results, and stop."""
        results: list[dict[str, object]] = []
        try:
            self.build()
            for pipeline in self.pipelines:
                pipeline.source.open()
                deadline = time.monotonic() + 20.0
                result = None
                while result is None and time.monotonic() < deadline and not pipeline.finished:
                    with self._blocking():
                        result = pipeline.step(time.monotonic(), read_timeout_s=READ_TIMEOUT_S)
                if result is None:
                    results.append({"camera": pipeline.name, "error": pipeline.last_error or "no frame"})
                else:
                    results.append(result.to_json())
        except StopRequested:
            pass
        finally:
            self.shutdown()
        return results


def dumps(results: list[dict[str, object]]) -> str:
    return "\n".join(json.dumps(r) for r in results)
