"""The settings a user changes often, from the console in a real headless Chromium against
``layerwatch run`` with an OctoPrint stand-in (issue 32): sensitivity, countdown, action and watching only
while printing are saved to ``<state_dir>/settings.json``, applied at once (the camera's threshold moves)
and still there after a restart; a bad value is refused naming its key, by the API and by
``layerwatch check-config`` reading the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api_harness import api_service, keep_artefact, sign_in
from tests.console_browser import CONSOLE_MARKS, DESKTOP, launch, new_page
from tests.http_peers import serving

pytestmark = CONSOLE_MARKS
JOB = {"state": "Printing", "progress": {"completion": 10.0}, "job": {"file": {"name": "cube.gcode"}}}


def test_settings_saved_applied_at_once_and_kept_across_a_restart(tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with serving((204, None, {})) as octoprint:
        job = {"value": JOB}
        octoprint.responder = lambda r: (200, job["value"], {}) if r.path == "/api/job" else None
        printer = (f'[printer]\ntype = "octoprint"\nurl = "{octoprint.url}"\napi_key = "k3y"\n'
                   'poll_interval_s = 0.5\naction = "pause"\n')  # fmt: skip
        with api_service(tmp_path, extra=printer) as service, sync_api.sync_playwright() as pw:
            before = service.get("/api/settings").json()
            assert before["cameras"]["printer"]["sensitivity"] == 0 and before["printer"]["action"] == "pause"
            browser = launch(pw)
            try:
                page = new_page(browser, DESKTOP)
                sign_in(page, service.url)
                page.click("nav button[data-tab=settings]")
                page.wait_for_function("document.getElementById('settings-file').textContent.length > 0")
                page.fill("#set-sensitivity", "1.5")
                page.fill("#set-countdown", "30")
                page.select_option("#set-action", "cancel")
                page.uncheck("#set-watch-only")
                page.click("#settings-form button[type=submit]")
                page.wait_for_function(
                    "document.getElementById('settings-status').textContent === 'Saved and applied.'"
                )

                def in_force() -> dict | None:
                    settings = service.get("/api/settings").json()
                    return settings if settings["cameras"]["printer"]["sensitivity"] == 1.5 else None

                after = service.wait(in_force, timeout=20, what="the new sensitivity in force")
                assert after["cameras"]["printer"]["threshold"] < before["cameras"]["printer"]["threshold"]
                assert after["countdown_s"] == 30 and after["printer"] == {
                    "action": "cancel", "watch_only_while_printing": False,
                }  # fmt: skip
                assert service.status()["printer_action"] == "cancel"
                page.screenshot(path=str(tmp_path / "console-settings-1280.png"), full_page=True)
                # "don't watch this print": paused until the print ends, then watching again
                page.click("nav button[data-tab=live]")
                page.click("#skip-print")
                skipped = lambda: service.camera()["state"] == "paused" and service.camera()["skipping_print"]  # noqa: E731
                service.wait(skipped, timeout=20, what="not watching this print")
                page.wait_for_function(
                    "document.getElementById('facts').textContent.includes('not this print')"
                )
                job["value"] = {"state": "Operational", "progress": {"completion": 100.0}}
                service.wait(lambda: service.camera()["state"] != "paused", timeout=20, what="watching again")
                assert not service.camera()["skipping_print"]
            finally:
                browser.close()
            # refused, naming the key; nothing stored
            bad = service.post("/api/settings/change", {"camera": "printer", "sensitivity": 9})
            assert bad.status_code == 422 and "sensitivity" in bad.text
        stored = json.loads((service.state_dir / "settings.json").read_text())
        assert stored == {"alarm": {"countdown_s": 30.0}, "cameras": {"printer": {"sensitivity": 1.5}},
                          "printer": {"action": "cancel", "watch_only_while_printing": False}}  # fmt: skip
        # a restart keeps them
        job["value"] = JOB
        with api_service(tmp_path, extra=printer) as service:
            again = service.get("/api/settings").json()
            assert again["cameras"]["printer"]["sensitivity"] == 1.5 and again["countdown_s"] == 30
            assert again["cameras"]["printer"]["threshold"] == after["cameras"]["printer"]["threshold"]
            assert again["printer"]["action"] == "cancel"
    for shot in tmp_path.glob("console-*.png"):
        keep_artefact(shot)


def test_check_config_reads_the_settings_file_and_names_a_bad_key(tmp_path: Path):
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "layerwatch.toml"
    config.write_text(f'[service]\nstate_dir = "{state}"\n[[cameras]]\nname = "printer"\n'
                      'source = { type = "rtsp", url = "rtsp://127.0.0.1:8554/x" }\n')  # fmt: skip
    check = [sys.executable, "-m", "appliance", "check-config", "--config", str(config)]
    (state / "settings.json").write_text(json.dumps({"cameras": {"printer": {"sensitivity": 9}}}))
    run = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert run.returncode == 78 and "sensitivity" in run.stdout + run.stderr, run
    (state / "settings.json").write_text(json.dumps({"cameras": {"printer": {"threshold": 0.2}}}))
    run = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert run.returncode == 78 and "cameras.printer.threshold" in run.stdout + run.stderr, run
    (state / "settings.json").write_text(json.dumps({"cameras": {"printer": {"sensitivity": 1}}}))
    assert subprocess.run(check, capture_output=True, text=True, timeout=60).returncode == 0
