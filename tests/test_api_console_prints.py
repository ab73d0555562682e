"""Print review in a real headless Chromium against ``layerwatch run`` (issue 32): a recorded print with
its saved frames and its timelapse (made by the real ffmpeg), the timelapse plays in the page, and
"failed from here" on the print's timeline teaches the camera the frames before as normal and from there
as failures; "it was fine" teaches them all as normal. A phone-sized window."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import pytest
import requests

from appliance.config.history import TimelapseConfig
from appliance.history.frames import frame_name, job_folder
from appliance.history.jobs import JobRecord
from appliance.history.timelapse import make_timelapse
from tests.api_harness import api_service, calibrate_scene, keep_artefact, scene, sign_in
from tests.console_browser import CONSOLE_MARKS, launch, new_page

JOB = "20261207T100000_cube.gcode"

pytestmark = CONSOLE_MARKS


def _recorded_print(state: Path, start: float) -> list[float]:
    """A finished job with 8 normal then 8 failure frames 10 s apart, and its timelapse; their times."""
    folder = job_folder(state / "images", "printer", JOB)
    folder.mkdir(parents=True)
    times = [start + 10.0 * i for i in range(16)]
    for i, at in enumerate(times):
        cv2.imwrite(str(folder / frame_name(at, JOB)), scene(60 + i, failure=i >= 8, shift=i % 6))
    make_timelapse(folder, TimelapseConfig())
    job = JobRecord(JOB, "cube.gcode", "printer", ["printer"], start, ended=times[-1] + 5,
                    outcome="cancelled", state="operational", progress=63.0)  # fmt: skip
    (state / "history").mkdir(parents=True, exist_ok=True)
    (state / "history" / "jobs.json").write_text(json.dumps([job.to_json()]))
    return times


def test_review_a_print_play_its_timelapse_and_mark_it_failed_from_a_frame(tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    state = tmp_path / "state"
    calibrate_scene(state)
    times = _recorded_print(state, time.time() - 3600)
    with api_service(tmp_path) as service, sync_api.sync_playwright() as pw:
        jobs = service.get("/api/jobs").json()
        assert (
            jobs[0]["id"] == JOB
            and jobs[0]["outcome"] == "cancelled"
            and jobs[0]["timelapse_cameras"] == ["printer"]
        )
        assert service.get(f"/api/jobs/{JOB}/frames/..%2F..%2Fapi_token").status_code == 404
        ranged = requests.get(service.url + f"/api/jobs/{JOB}/timelapse.mp4", timeout=10,
                              headers={**service.auth(), "Range": "bytes=0-99"})  # fmt: skip
        assert ranged.status_code == 206 and len(ranged.content) == 100
        before = service.camera()["learner"]
        browser = launch(pw)
        try:
            page = new_page(browser)
            page.on("dialog", lambda dialog: dialog.accept())
            sign_in(page, service.url)
            page.click("nav button[data-tab=prints]")
            item = f"#jobs li[data-job='{JOB}']"
            page.wait_for_selector(item)
            assert "cancelled" in page.inner_text(item)
            page.click(item + " > button")
            # the timelapse plays in the page
            page.wait_for_selector(item + " video")
            page.wait_for_function(f'document.querySelector("{item} video").readyState >= 1', timeout=30000)
            assert page.evaluate(f'document.querySelector("{item} video").duration') > 0
            page.wait_for_selector(item + " .card img")
            page.screenshot(path=str(tmp_path / "console-print-review-phone.png"), full_page=True)
            # "failed from here" on the first failure frame
            page.click(f"{item} .card[data-time='{round(times[8], 3)}'] button[data-from]")
            learned = service.wait(
                lambda: (now := service.camera()["learner"])["failure"] >= before["failure"] + 8 and now,
                timeout=30, what="the print's frames learned",
            )  # fmt: skip
            assert learned["ok"] == before["ok"] + 8 and learned["failure"] == before["failure"] + 8
            # "it was fine": every frame normal
            page.click(f"{item} .review button.ghost")
            service.wait(lambda: service.camera()["learner"]["ok"] >= learned["ok"] + 12, timeout=30,
                         what="the whole print learned as normal")  # fmt: skip
        finally:
            browser.close()
    for shot in tmp_path.glob("console-*.png"):
        keep_artefact(shot)
