"""History parts on real files and the real ffmpeg/ffprobe: job happenings, timelapse, retention, the
job store, the free-space floor on a real full file system (a 2 MB tmpfs)."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.config.history import TimelapseConfig
from appliance.history.frames import FrameWriter, frame_name, job_frames
from appliance.history.jobs import JobRecord, JobStore
from appliance.history.retention import DAY_S, prune_evidence, prune_images
from appliance.history.space import SpaceGuard
from appliance.history.timelapse import make_timelapse, probe, timelapse_fps
from appliance.history.tracker import JobTracker


def write_frames(
    folder: Path, count: int, size: tuple[int, int] = (320, 240), start: float = 1.76e9
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for i in range(count):
        image = np.full((size[1], size[0], 3), 50, np.uint8)
        cv2.rectangle(image, (10 + 3 * i, 40), (60 + 3 * i, 90), (40, 200, 220), -1)
        image = cv2.add(image, rng.integers(0, 40, image.shape, dtype=np.uint8))
        path = folder / frame_name(start + i * 10.0, "job")
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def test_tracker_reports_start_progress_steps_state_and_end_in_order():
    tracker = JobTracker(progress_step=5)
    b = "benchy.gcode"
    polls = [("operational", None, None), ("printing", 0.0, b), ("printing", 3.0, b), ("printing", 5.2, b),
             ("printing", 17.0, b), ("paused", 17.0, b), ("unreachable", None, None), ("printing", 99.5, b),
             ("operational", 100.0, None)]  # fmt: skip
    seen = []
    for state, progress, file in polls:
        for h in tracker.update({"state": state, "progress": progress, "file": file}):
            seen.append((h.kind, h.progress if h.kind == "progress" else h.outcome or h.state))
    assert seen == [
        ("state", "printing"), ("started", "printing"), ("progress", 5.0), ("progress", 15.0),
        ("state", "paused"), ("state", "printing"), ("progress", 95.0), ("state", "operational"),
        ("ended", "completed"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("last_state", "final", "progress", "paused", "outcome"),
    [("printing", "operational", 40.0, False, "cancelled"), ("printing", "error", 40.0, False, "failed"),
     ("paused", "operational", 40.0, True, "paused_by_layerwatch"),
     ("printing", "complete", 100.0, False, "completed"),
     ("printing", "cancelled", 12.0, False, "cancelled")],
)  # fmt: skip
def test_job_outcomes(last_state: str, final: str, progress: float, paused: bool, outcome: str):
    tracker = JobTracker()
    tracker.update({"state": last_state, "progress": progress, "file": "a.gcode", "active": True})
    tracker.paused_by_layerwatch = paused
    [*_, end] = tracker.update({"state": final, "progress": progress, "file": "a.gcode", "active": False})
    assert (end.kind, end.outcome) == ("ended", outcome)


def test_a_print_that_finished_between_polls_is_completed_not_cancelled():
    """Issue 32 defect 6: OctoPrint's last Printing poll said 97 %, the next Operational with completion
    100: the printer's final completion decides."""
    tracker = JobTracker()
    tracker.update({"state": "printing", "progress": 97.0, "file": "a.gcode"})
    [*_, end] = tracker.update({"state": "operational", "progress": 100.0, "file": "a.gcode"})
    assert (end.kind, end.outcome, end.progress) == ("ended", "completed", 100.0)


def test_a_file_change_while_printing_is_a_new_job():
    tracker = JobTracker()
    tracker.update({"state": "printing", "progress": 50.0, "file": "a.gcode"})
    kinds = [
        (h.kind, h.file) for h in tracker.update({"state": "printing", "progress": 1.0, "file": "b.gcode"})
    ]
    assert kinds == [("ended", "a.gcode"), ("started", "b.gcode")]


def test_timelapse_is_h264_with_the_expected_frame_rate_and_duration(tmp_path: Path):
    write_frames(tmp_path / "job", 36)
    config = TimelapseConfig(target_duration_s=3, fps_cap=30, max_width=1280, max_bytes=5_000_000)
    made = make_timelapse(tmp_path / "job", config)
    assert made.fps == 12 == timelapse_fps(36, config)  # ceil(36 / 3)
    info = probe(made.path)
    assert info["codec"] == "h264" and info["frames"] == 36 and (info["width"], info["height"]) == (320, 240)
    assert abs(info["duration_s"] - 3.0) < 0.1
    assert made.path == tmp_path / "job" / "timelapse.mp4" and not list((tmp_path / "job").glob(".*"))


def test_timelapse_fps_is_capped_and_width_capped(tmp_path: Path):
    write_frames(tmp_path / "job", 40, size=(640, 480))
    config = TimelapseConfig(target_duration_s=1, fps_cap=10, max_width=320, max_bytes=5_000_000)
    made = make_timelapse(tmp_path / "job", config)
    assert made.fps == 10 and (made.width, made.height) == (320, 240)
    assert abs(made.duration_s - 4.0) < 0.15


def test_timelapse_adapts_quality_and_width_to_stay_under_the_size_limit(tmp_path: Path):
    write_frames(tmp_path / "job", 30, size=(640, 480))
    roomy = make_timelapse(
        tmp_path / "job", TimelapseConfig(target_duration_s=3, max_bytes=50_000_000, crf=18)
    )
    limit = max(100_000, roomy.size_bytes // 6)
    tight = make_timelapse(tmp_path / "job", TimelapseConfig(target_duration_s=3, max_bytes=limit, crf=18))
    assert roomy.attempts == 1 and tight.attempts > 1
    assert tight.size_bytes <= limit < roomy.size_bytes
    assert probe(tight.path)["frames"] == 30


def test_retention_deletes_old_frames_and_timelapses_and_keeps_new_ones(tmp_path: Path):
    images = tmp_path / "images"
    old = write_frames(images / "printer" / "20260101T000000_old", 3)
    (images / "printer" / "20260101T000000_old" / "timelapse.mp4").write_bytes(b"x" * 100)
    new = write_frames(images / "printer" / "20261201T000000_new", 3)
    now = time.time()
    for path in [*old, images / "printer" / "20260101T000000_old" / "timelapse.mp4"]:
        os.utime(path, (now - 8 * DAY_S, now - 8 * DAY_S))
    for path in new:
        os.utime(path, (now - 6 * DAY_S, now - 6 * DAY_S))
    evidence = tmp_path / "cameras" / "printer" / "alerts"
    evidence.mkdir(parents=True)
    (evidence / "old-0.jpg").write_bytes(b"j")
    (evidence / "new-0.jpg").write_bytes(b"j")
    os.utime(evidence / "old-0.jpg", (now - 31 * DAY_S, now - 31 * DAY_S))
    pruned = prune_images(images, 7, now)
    assert pruned.files == 4 and pruned.folders == 1
    assert not (images / "printer" / "20260101T000000_old").exists()
    assert all(p.exists() for p in new)
    assert prune_evidence(tmp_path, 30, now).files == 1
    assert [p.name for p in evidence.iterdir()] == ["new-0.jpg"]
    assert prune_images(images, 0, now + 100 * DAY_S).files == 0  # 0 keeps everything


def test_job_store_survives_restart_and_sets_a_corrupt_file_aside(tmp_path: Path):
    path = tmp_path / "history" / "jobs.json"
    store = JobStore(path)
    store.add(JobRecord("20261202T100000_a", "a.gcode", "printer", ["printer"], 1.0))
    again = JobStore(path)
    assert [j.id for j in again.jobs] == ["20261202T100000_a"]
    assert [j.outcome for j in again.close_interrupted(2.0)] == ["interrupted"]
    assert json.loads(path.read_text())[0]["outcome"] == "interrupted"
    path.write_text('[{"id": 5')
    assert JobStore(path).jobs == []
    assert list(path.parent.glob("jobs.json.bad-*"))


def _jpeg(size: int = 120_000) -> bytes:
    return b"\xff\xd8" + os.urandom(size)


def test_floor_stops_saving_before_the_disk_is_full(small_tmpfs: Path):
    events: list[tuple[str, dict]] = []
    guard = SpaceGuard(small_tmpfs, 0.5, lambda k, p: events.append((k, p)))
    writer = FrameWriter(guard, lambda c, j, p: None)
    writer.start()
    accepted = 0
    for i in range(40):
        guard._checked_at = -1e9  # look at the disk on every frame (normally every few seconds)
        accepted += writer.save("printer", "job", small_tmpfs / "printer" / "job" / f"{i:03d}.jpg", _jpeg())
        writer.flush()
    writer.stop()
    assert 0 < accepted < 40 and not guard.saving
    assert [k for k, _ in events] == ["history_saving_stopped"]
    assert events[0][1]["min_free_mb"] == 0.5 and events[0][1]["free_mb"] < 0.6
    assert os.statvfs(small_tmpfs).f_bavail > 0  # never filled
    for path in (small_tmpfs / "printer" / "job").iterdir():
        path.unlink()
    guard._checked_at = -1e9
    assert guard.allows() and [k for k, _ in events][-1] == "history_saving_resumed"


def test_without_a_floor_saving_stops_before_a_write_runs_out_of_space(small_tmpfs: Path):
    events: list[str] = []
    guard = SpaceGuard(small_tmpfs, 0, lambda k, p: events.append(k))  # no floor: only the frame's own size
    writer = FrameWriter(guard, lambda c, j, p: None)
    writer.start()
    for i in range(40):
        writer.save("printer", "job", small_tmpfs / "job" / f"{i:03d}.jpg", _jpeg())
        writer.flush()
    writer.stop()
    assert not guard.saving and events == ["history_saving_stopped"]
    assert not list((small_tmpfs / "job").glob(".*.tmp"))  # no half-written temp file is left


def test_enospc_at_the_write_seam_is_reported_without_a_tmpfs(tmp_path: Path):
    events: list[str] = []
    guard = SpaceGuard(tmp_path, 0, lambda k, p: events.append(k))

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    writer = FrameWriter(guard, lambda c, j, p: None, write=full)
    writer.start()
    writer.save("printer", "job", tmp_path / "a.jpg", b"x")
    writer.flush()
    writer.stop()
    assert events == ["history_saving_stopped"] and not writer.save(
        "printer", "job", tmp_path / "b.jpg", b"x"
    )
    assert job_frames(tmp_path) == []
