"""Recalibration beside the analysis loop: one worker thread per service, one calibration at a time.

Issue 14, defect 4: ``recalibrate`` used to read ``calibration.frames`` frames on the analysis thread,
``calibration.interval_s`` apart, so the camera went unwatched for about 20 s per command, queued
commands ran one after the other and SIGTERM waited for all of them.

Now :meth:`CalibrationWorker.request` only queues the camera (a camera already queued or being calibrated
is merged into that calibration, not run again). The frames come from the analysis loop itself: while a
camera is being calibrated, :meth:`CameraPipeline.step` hands every frame it reads to :meth:`offer`, which
keeps one at most every ``interval_s`` seconds (the camera's source returns each frame once, so a second
reader would steal frames from the analysis). The worker thread embeds each kept frame under the
detector's lock (``model_lock``, held by the analysis for one frame at a time too), so the loop waits at
most one embedding. When all frames are in, the calibration is written atomically (temp, fsync, rename)
and the analysis thread switches to it at its next turn (:meth:`apply_finished`); the engine's state and
the learner's answers are kept.

:meth:`stop` (SIGTERM) abandons a calibration in progress at once: nothing has been written (the write
happens only after the last frame), the old calibration stays in use and on disk. A calibration that does
not get its frames within ``frames x (interval_s + 5)`` seconds (camera offline, test mode) is abandoned
the same way and logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from appliance.detector import save_calibration
from appliance.detector.calibration import new_calibration, stack_embeddings
from appliance.detector.yolo_detector import YoloDetector

if TYPE_CHECKING:
    from appliance.service.pipeline import CameraPipeline
    from appliance.sources import Frame

logger = logging.getLogger(__name__)

FRAME_WAIT_S = 0.2  # how often the worker looks at the stop flag while it waits for frames
GRACE_PER_FRAME_S = 5.0  # a calibration gets frames x (interval_s + this) seconds, then it is abandoned


class CalibrationAbandoned(Exception):
    """Stopped (SIGTERM) or out of time before the last frame: nothing written, the old calibration kept."""


@dataclass
class _Collecting:
    """The calibration in progress: frames handed over by the analysis loop, not yet embedded."""

    pipeline: CameraPipeline
    wanted: int
    interval_s: float
    frames: deque[np.ndarray] = field(default_factory=deque)
    taken: int = 0
    last_taken_at: float = -float("inf")


class CalibrationWorker:
    """Runs the service's recalibrations on its own thread (daemon; :meth:`stop` joins it)."""

    def __init__(self, model_lock: threading.Lock):
        self.model_lock = model_lock
        self._queue: deque[CameraPipeline] = deque()
        self._current: _Collecting | None = None
        self._finished: deque[CameraPipeline] = deque()
        self._wanted: dict[str, int] = {}  # camera -> frames asked for (the API's "capture N frames")
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.completed = 0  # counters, for tests and the log
        self.merged = 0
        self.abandoned = 0

    # -- the analysis thread ---------------------------------------------------------------
    def request(self, pipeline: CameraPipeline, frames: int | None = None) -> bool:
        """Queue a recalibration of ``pipeline``'s camera from ``frames`` frames (default
        ``calibration.frames``); False (merged) if one is queued or running."""
        if self._stop.is_set():
            return False
        with self._lock:
            running = self._current is not None and self._current.pipeline is pipeline
            if running or pipeline in self._queue:
                self.merged += 1
                logger.info("camera %s: recalibration already %s: merged", pipeline.name,
                            "in progress" if running else "queued")  # fmt: skip
                return False
            self._queue.append(pipeline)
            if frames:
                self._wanted[pipeline.name] = frames
            pipeline.calibrating = True
            self._lock.notify_all()
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="calibration", daemon=True)
                self._thread.start()
        logger.info("camera %s: recalibration queued (analysis goes on meanwhile)", pipeline.name)
        return True

    def offer(self, pipeline: CameraPipeline, frame: Frame) -> None:
        """A frame the analysis loop read from ``pipeline``'s camera (called for every frame; cheap)."""
        current = self._current
        if current is None or current.pipeline is not pipeline:
            return
        now = time.monotonic()
        with self._lock:
            if current.taken >= current.wanted or now - current.last_taken_at < current.interval_s:
                return
            current.frames.append(frame.image.copy())
            current.taken += 1
            current.last_taken_at = now
            self._lock.notify_all()

    def apply_finished(self) -> None:
        """Switch the cameras whose new calibration is written to it (on the analysis thread)."""
        while True:
            with self._lock:
                if not self._finished:
                    return
                pipeline = self._finished.popleft()
            pipeline.reload_calibration()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Abandon the calibration in progress and drop the queued ones (nothing is written)."""
        self._stop.set()
        with self._lock:
            for pipeline in self._queue:
                pipeline.calibrating = False
            self._queue.clear()
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    # -- the worker thread -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self._queue:
                    self._thread = None  # the next request starts a new one
                    return
                pipeline = self._queue.popleft()
                calibration = pipeline.config.calibration
                wanted = self._wanted.pop(pipeline.name, None) or calibration.frames
                self._current = _Collecting(pipeline, wanted, calibration.interval_s)
            try:
                self._calibrate(self._current)
                with self._lock:
                    self._finished.append(pipeline)
                self.completed += 1
            except CalibrationAbandoned as exc:
                self.abandoned += 1
                logger.warning("camera %s: recalibration abandoned (%s); the old calibration stays",
                               pipeline.name, exc)  # fmt: skip
            except Exception as exc:  # a failed calibration must not end the worker
                self.abandoned += 1
                logger.error("camera %s: recalibration failed: %s; the old calibration stays", pipeline.name,
                             exc, exc_info=True)  # fmt: skip
            finally:
                with self._lock:
                    self._current = None
                pipeline.calibrating = False

    def _next_frame(self, job: _Collecting, deadline: float) -> np.ndarray:
        with self._lock:
            while not job.frames:
                if self._stop.is_set():
                    raise CalibrationAbandoned("the service is stopping")
                if time.monotonic() > deadline:
                    got = job.taken - len(job.frames)
                    raise CalibrationAbandoned(f"only {got} of {job.wanted} frames arrived")
                self._lock.wait(FRAME_WAIT_S)
            return job.frames.popleft()

    def _calibrate(self, job: _Collecting) -> None:
        pipeline = job.pipeline
        detector = pipeline.detector
        started = time.monotonic()
        deadline = started + job.wanted * (job.interval_s + GRACE_PER_FRAME_S)
        logger.info("camera %s: recalibrating from %d frames %.1f s apart", pipeline.name, job.wanted,
                    job.interval_s)  # fmt: skip
        if isinstance(detector, YoloDetector):  # a box model: its calibration is the boxes it finds
            images = [self._next_frame(job, deadline) for _ in range(job.wanted)]
            if self._stop.is_set():
                raise CalibrationAbandoned("the service is stopping")
            with self.model_lock:
                calibration = detector.build_calibration(pipeline.name, images)
        else:
            embedded = []
            for _ in range(job.wanted):
                image = self._next_frame(job, deadline)
                if pipeline.ignore:  # the camera's ignore zones are painted over, as in the analysis
                    image = pipeline.ignore.apply(image, detector.input_size)
                with self.model_lock:  # the backend is not shared between threads at the same moment
                    embedded.append(detector.embed(image))
            if self._stop.is_set():
                raise CalibrationAbandoned("the service is stopping")
            grid = detector.bundle.patch_grid
            dim = detector.bundle.prototypes["ok"].shape[1]
            ok, ok_patches = stack_embeddings(embedded, dim, grid[0] * grid[1])
            empty, empty_patches = stack_embeddings([], ok.shape[1], ok_patches.shape[1])
            calibration = new_calibration(
                pipeline.name, detector.bundle.fingerprint(), ok, empty, ok_patches,
                failure_patches=empty_patches,
            )  # fmt: skip
        save_calibration(calibration, pipeline.state_dir)  # atomic: the old file or the new one, never half
        logger.info("camera %s: recalibrated in %.1f s", pipeline.name, time.monotonic() - started)
