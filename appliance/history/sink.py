"""The history action sink: job records, frames, photos, timelapses, retention and job messages.

Jobs come from the linked printer's ``printer_state`` events (:mod:`.tracker`; the printer's camera,
or every camera when ``printer.camera`` is unset) and, for cameras without a linked printer, from
monitoring: a job runs from monitoring on (the first analysed frame, or leaving ``paused``) to
monitoring off (entering ``paused``). While a job runs a frame is saved every
``history.frame_interval_s`` (:mod:`.frames`, behind the free-space floor of :mod:`.space`) and a photo
goes out every ``history.notify.photo_interval_s``; when it ends the final photo goes out and the
timelapse (:mod:`.timelapse`) is made on the slow-work thread and sent. Job messages reach the channels
as ``notification`` events on the event hub; the job's state is the ``job_state`` event (MQTT: retained
``<prefix>/<device_id>/job``). Retention (:mod:`.retention`) runs at start and every
``history.retention_interval_s``.

Threads: the analysis loop calls ``on_frame``/``on_tick`` (JPEG encoding every few seconds only), the
printer's poll thread delivers ``printer_state``; disk writes run on the frame writer's thread and
ffmpeg and retention on the slow-work thread. A lock guards the job state.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from appliance.actions.dispatcher import EventHub, Notification, event_hub
from appliance.actions.evidence import encode_jpeg
from appliance.decision import Alert, CameraState, Transition
from appliance.history import messages
from appliance.history.frames import FrameWriter, frame_name, job_folder, job_frames
from appliance.history.jobs import JobRecord, JobStore, job_id_for
from appliance.history.retention import prune_evidence, prune_images
from appliance.history.space import SpaceGuard
from appliance.history.timelapse import TimelapseError, make_timelapse
from appliance.history.tracker import Happening, JobTracker
from appliance.service.pipeline import FrameResult

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.service.pipeline import ActionSink
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)

PRINTER = "printer"  # the key of the printer's job in HistorySink.current


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    if not config.history.enabled:
        return []
    return [HistorySink(config, context, event_hub(context))]


class SlowWork:
    """One thread for ffmpeg and retention sweeps, in order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="history-slow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, work: Callable[[], None]) -> None:
        self._queue.put(work)

    def stop(self, timeout_s: float = 1.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def join(self) -> None:
        """Wait until everything submitted so far is done (tests, benchmarks)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            try:
                if work is None:
                    return
                work()
            except Exception as exc:
                logger.error("history: background work failed: %s", exc, exc_info=True)
            finally:
                self._queue.task_done()


class HistorySink:
    def __init__(self, config: LayerwatchConfig, context: ServiceContext, hub: EventHub):
        self.config = config.history
        self.hub = hub
        self.state_dir = context.state_dir
        self.cameras = list(context.cameras)
        self.images_dir = self.config.images_path(context.state_dir)
        self.guard = SpaceGuard(self.images_dir, self.config.min_free_mb, hub.emit)
        self.store = JobStore(context.state_dir / "history" / "jobs.json", self.config.max_jobs)
        # before any sink starts: the printer link's first poll (its thread starts with it) may open
        # this run's job at once, and must never find the last run's open jobs still to be closed
        self.store.close_interrupted(time.time())
        self.writer = FrameWriter(self.guard, self._frame_saved)
        self.slow = SlowWork()
        printer = config.printer
        self.printer_cameras: list[str] = []
        if printer is not None and printer.poll_interval_s > 0:
            self.printer_cameras = [printer.camera] if printer.camera else list(self.cameras)
        self.tracker = JobTracker(self.config.notify.progress_step)
        self.current: dict[str, JobRecord] = {}  # PRINTER or a camera name -> its running job
        self._last_image: dict[str, np.ndarray] = {}
        self._last_saved: dict[str, float] = {}
        self._last_photo: dict[str, float] = {}  # job id -> wall clock of its last photo
        self._last_sweep = -float("inf")
        self._lock = threading.RLock()
        self.timelapses: list[dict[str, Any]] = []  # made by this run (tests, the log)
        hub.listen(self._on_hub_event)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.writer.start()
        self.slow.start()
        logger.info(
            "history: frames under %s every %.0f s, kept %.0f days; %s",
            self.images_dir,
            self.config.frame_interval_s,
            self.config.image_retention_days,
            "jobs from the printer" if self.printer_cameras else "jobs from monitoring on/off",
        )

    def stop(self) -> None:
        with self._lock:
            for key in list(self.current):
                self._end(key, "interrupted", final=False)
        self.writer.stop()
        self.slow.stop()

    # -- which job a camera's frames belong to -------------------------------------------------
    def job_of(self, camera: str) -> JobRecord | None:
        with self._lock:
            return self.current.get(PRINTER if camera in self.printer_cameras else camera)

    def _notify(self, notification: Notification) -> None:
        self.hub.emit("notification", {"notification": notification})

    def _publish_state(self, job: JobRecord) -> None:
        last = next((path for path in job.timelapses.values()), None)
        self.hub.emit(
            "job_state",
            {
                "job": job.id,
                "name": job.name,
                "source": job.source,
                "active": job.active,
                "state": job.state,
                "progress": job.progress,
                "outcome": job.outcome,
                "started_at": job.to_json()["started_at"],
                "ended_at": job.to_json()["ended_at"],
                "alerts": len(job.alerts),
                "frames": sum(job.frames.values()),
                "last_timelapse": last or self._last_timelapse(),
            },
        )

    def _last_timelapse(self) -> str | None:
        for job in reversed(self.store.jobs):
            for path in job.timelapses.values():
                return path
        return None

    def _photo(self, camera: str | None) -> tuple[str | None, bytes | None]:
        names = [camera] if camera else []
        names += [c for c in self.printer_cameras + self.cameras if c not in names]
        for name in names:
            image = self._last_image.get(name)
            if image is not None:
                return name, encode_jpeg(image, self.config.jpeg_quality)
        return camera, None

    # -- starting and ending jobs --------------------------------------------------------------
    def _start(
        self, key: str, name: str, source: str, cameras: list[str], state: str | None, progress: float | None
    ) -> JobRecord:
        now = time.time()
        job = JobRecord(job_id_for(name, now), name, source, cameras, now, state=state, progress=progress)
        self.current[key] = job
        self._last_photo[job.id] = now
        self.store.add(job)
        logger.info("history: job %s started (%s)", job.id, source)
        if self.config.notify.job_start:
            self._notify(messages.started(job, cameras[0] if len(cameras) == 1 else None))
        self._publish_state(job)
        return job

    def _end(self, key: str, outcome: str, final: bool = True) -> None:
        job = self.current.pop(key, None)
        if job is None:
            return
        job.ended, job.outcome = time.time(), outcome
        self.store.save()
        logger.info(
            "history: job %s ended: %s (%d alerts, %d frames)",
            job.id,
            outcome,
            len(job.alerts),
            sum(job.frames.values()),
        )
        self._publish_state(job)
        if not final:
            return
        camera = job.cameras[0] if job.cameras else None
        if self.config.notify.final_photo:
            shot_camera, jpeg = self._photo(camera)
            self._notify(messages.ended(job, shot_camera, jpeg))
        if self.config.timelapse.enabled:
            self.slow.submit(lambda: self._make_timelapses(job))

    def _make_timelapses(self, job: JobRecord) -> None:
        self.writer.flush()
        for camera in job.cameras:
            folder = job_folder(self.images_dir, camera, job.id)
            if not job_frames(folder):
                continue
            if not self.guard.allows(needed_bytes=self.config.timelapse.max_bytes):
                logger.warning("history: no timelapse of %s/%s: not enough free space", camera, job.id)
                continue
            try:
                made = make_timelapse(folder, self.config.timelapse)
            except TimelapseError as exc:
                logger.error("history: timelapse of %s/%s failed: %s", camera, job.id, exc)
                self.hub.emit("timelapse_failed", {"camera": camera, "job": job.id, "error": str(exc)})
                continue
            except OSError as exc:
                self.guard.write_failed(exc)
                continue
            info = made.to_json()
            logger.info(
                "history: timelapse %s (%d bytes, %.1f s at %d fps, %d attempt(s), %.1f s)",
                made.path,
                made.size_bytes,
                made.duration_s,
                made.fps,
                made.attempts,
                made.encode_s,
            )
            with self._lock:
                job.timelapses[camera] = str(made.path)
                self.timelapses.append({"camera": camera, "job": job.id, **info})
            self.store.save()
            self._publish_state(job)
            self.hub.emit("job_timelapse", {"camera": camera, "job": job.id, **info})
            if self.config.notify.timelapse:
                self._notify(messages.timelapse(job, camera, info))

    # -- the printer's state (poll thread) -----------------------------------------------------
    def _on_hub_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "printer_state" and self.printer_cameras:
            with self._lock:
                for happening in self.tracker.update(payload):
                    self._happened(happening)
        elif (
            kind == "printer_action" and payload.get("action") == "pause" and payload.get("outcome") == "done"
        ):
            with self._lock:
                self.tracker.paused_by_layerwatch = True
                job = self.current.get(PRINTER)
                if job is not None:
                    job.paused_by_layerwatch = True
                    self.store.save()

    def _happened(self, happening: Happening) -> None:
        notify = self.config.notify
        job = self.current.get(PRINTER)
        camera = self.printer_cameras[0] if len(self.printer_cameras) == 1 else None
        if happening.kind == "started":
            self._start(
                PRINTER,
                happening.file or "print",
                "printer",
                list(self.printer_cameras),
                happening.state,
                happening.progress,
            )
        elif happening.kind == "ended":
            if job is not None:
                job.state, job.progress = happening.state, happening.progress
            self._end(PRINTER, happening.outcome or "cancelled")
        elif happening.kind == "state":
            if job is not None:
                job.state = happening.state
                self.store.save()
                self._publish_state(job)
            if notify.state_changes and happening.state and happening.previous:
                self._notify(
                    messages.state_changed(job, camera, happening.previous, happening.state, happening.file)
                )
        elif happening.kind == "error":
            if notify.errors and happening.state:
                self._notify(messages.error(job, camera, happening.state, happening.file))
        elif happening.kind == "progress" and job is not None and happening.progress is not None:
            job.progress = happening.progress
            self._publish_state(job)
            if notify.progress:
                self._notify(messages.progress(job, camera, happening.progress))

    # -- sink calls (analysis loop) ------------------------------------------------------------
    def on_frame(self, result: FrameResult) -> None:
        camera = result.camera
        self._last_image[camera] = result.frame.evidence_image
        with self._lock:
            unlinked = camera not in self.printer_cameras and camera not in self.current
            if unlinked and result.state != CameraState.PAUSED:
                self._start(camera, "monitoring", "monitoring", [camera], None, None)
            job = self.job_of(camera)
        if job is None:
            return
        now = time.monotonic()
        if now - self._last_saved.get(camera, -float("inf")) < self.config.frame_interval_s:
            return
        self._last_saved[camera] = now
        path = job_folder(self.images_dir, camera, job.id) / frame_name(result.frame.timestamp, job.id)
        self.writer.save(
            camera, job.id, path, encode_jpeg(result.frame.evidence_image, self.config.jpeg_quality)
        )

    def _frame_saved(self, camera: str, job_id: str, path: Path) -> None:
        with self._lock:
            for job in list(self.current.values()):
                if job.id == job_id:
                    job.frames[camera] = job.frames.get(camera, 0) + 1

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        if camera in self.printer_cameras:
            return
        with self._lock:
            if transition.state == CameraState.PAUSED:
                self._end(camera, "completed")

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        job = self.job_of(camera)
        if job is not None and alert.id not in job.alerts:
            with self._lock:
                job.alerts.append(alert.id)
            self.slow.submit(self.store.save)

    def on_tick(self, now: float) -> None:
        wall = time.time()
        if self.config.notify.photos:
            # under the lock: a job the poll thread ends now cannot get a photo after its final one
            with self._lock:
                for job in self.current.values():
                    printing = job.source == "monitoring" or (job.state or "").startswith("printing")
                    since = wall - self._last_photo.get(job.id, wall)
                    if not printing or since < self.config.notify.photo_interval_s:
                        continue
                    self._last_photo[job.id] = wall
                    camera, jpeg = self._photo(job.cameras[0] if job.cameras else None)
                    if jpeg is not None and camera is not None:
                        self._notify(messages.photo(job, camera, jpeg))
        if now - self._last_sweep >= self.config.retention_interval_s:
            self._last_sweep = now
            self.slow.submit(self.sweep)

    def sweep(self, wall_now: float | None = None) -> None:
        """Retention: old frames, timelapses and alert evidence go (any thread)."""
        with self._lock:
            keep = {job_folder(self.images_dir, c, j.id) for j in self.current.values() for c in j.cameras}
        images = prune_images(self.images_dir, self.config.image_retention_days, wall_now, keep)
        evidence = prune_evidence(self.state_dir, self.config.evidence_retention_days, wall_now)
        if images.files or evidence.files:
            logger.info(
                "retention: %d frame/timelapse file(s) (%.1f MB) and %d evidence image(s) deleted",
                images.files,
                images.bytes / 1e6,
                evidence.files,
            )
