"""The console's alert loop in a real headless Chromium against ``layerwatch run`` with an OctoPrint
stand-in on 127.0.0.1 (issue 32): the printer's state is shown as text (an injected ``<img onerror>``
runs nothing), the panel says what will happen and then what happened ("print paused"), it is still there
after the countdown, an alert is answered both ways and withdrawn from the panel and from the Alerts tab,
with the answer ids shown; a phone-sized window. A second test: the first visit is told where the token
is (also the SD image's copy on its boot partition, as text), signs in and gets the live events without a
reload (``protect_reads`` is the default), a telemetry alert in the history shows its signal, value and
limit, and the controls are above the fold at 1280 x 900."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.api_harness import api_service, calibrate_scene, keep_artefact, sign_in
from tests.console_browser import CONSOLE_MARKS, DESKTOP, launch, new_page
from tests.http_peers import serving

INJECTED = 'Printing <img src=x onerror="window.__xss=1">'

pytestmark = CONSOLE_MARKS


def _alert(service, alert_id: str) -> dict:  # type: ignore[no-untyped-def]
    return next(a for a in service.get("/api/alerts").json() if a["id"] == alert_id)


def test_alert_panel_says_what_happens_answers_both_ways_and_withdraws(tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    job = {
        "state": INJECTED,
        "progress": {"completion": 41.0},
        "job": {"file": {"name": "<b>cube</b>.gcode"}},
    }
    with serving((204, None, {})) as octoprint:
        octoprint.responder = lambda r: (200, job, {}) if r.method == "GET" and r.path == "/api/job" else None
        printer = (f'[printer]\ntype = "octoprint"\nurl = "{octoprint.url}"\napi_key = "k3y-0123456789"\n'
                   'poll_interval_s = 0.5\naction = "pause"\n')  # fmt: skip
        with api_service(tmp_path, extra=printer, countdown_s=4) as service, sync_api.sync_playwright() as pw:
            browser = launch(pw)
            try:
                page = new_page(browser)
                sign_in(page, service.url)
                # the printer's state, with its injected markup, is text: no element, no script
                page.wait_for_function("document.getElementById('facts').textContent.includes('onerror')")
                assert INJECTED.lower() in page.inner_text("#facts").lower()
                assert page.evaluate("document.querySelectorAll('#facts img').length") == 0
                assert page.evaluate("window.__xss") is None

                # the alert: what will happen, then what happened; the panel stays after the countdown
                page.wait_for_selector("#alert:not([hidden])", timeout=60000)
                assert "will be paused in" in page.inner_text("#alert-plan")
                alert_id = service.status()["active_alerts"][0]["alert"]
                # why: the labelled frames the alert's frame resembles, and the generic model's logit
                reason = page.inner_text("#alert-reason")
                assert "labelled failure" in reason and "similarity" in reason and "logit" in reason, reason
                entry = next(a for a in service.get("/api/alerts").json() if a["id"] == alert_id)
                assert entry["reason"]["nearest_failure"]["source"] == "calibration"
                octoprint.wait_posts(1, "/api/job", timeout=30)
                page.wait_for_function(
                    "document.getElementById('alert-plan').textContent.startsWith('Print paused at')",
                    timeout=15000,
                )
                time.sleep(1.0)
                assert page.is_visible("#alert") and page.evaluate("window.__xss") is None
                page.screenshot(path=str(tmp_path / "console-alert-paused-phone.png"), full_page=True)

                # real failure: the answer and its ids are shown; the alert stays open for the print
                page.click("#real-failure")
                page.wait_for_function(
                    "document.getElementById('alert-answer').textContent.includes('answer id')"
                )
                answered = service.wait(
                    lambda: _alert(service, alert_id)["answer_ids"] and _alert(service, alert_id),
                    timeout=20, what="answer ids",
                )  # fmt: skip
                assert answered["answer"] == "real_failure" and answered["learner"]["failure"] >= 1
                assert page.is_visible("#alert")
                # withdraw: the learner forgets it, the page says so
                page.click("#withdraw")
                service.wait(
                    lambda: _alert(service, alert_id)["answer"] is None, timeout=20, what="withdrawn"
                )
                assert _alert(service, alert_id)["learner"]["failure"] == answered["learner"][
                    "failure"
                ] - len(answered["answer_ids"])
                # false alarm closes the panel
                page.wait_for_selector("#withdraw", state="hidden")
                page.click("#false-alarm")
                page.wait_for_selector("#alert", state="hidden", timeout=20000)
                closed = service.wait(
                    lambda: _alert(service, alert_id)["closed"] and _alert(service, alert_id),
                    timeout=20, what="closed",
                )  # fmt: skip
                assert closed["closed"] == "false_alarm" and closed["answer"] == "false_alarm"

                # a past alert, answered again from the Alerts tab, then withdrawn there
                page.click("nav button[data-tab=history]")
                item = f"#history li[data-alert='{alert_id}']"
                page.wait_for_selector(item + " button[data-act=real_failure]")
                page.click(item + " button[data-act=real_failure]")
                service.wait(lambda: _alert(service, alert_id)["answer"] == "real_failure", timeout=20,
                             what="past alert answered")  # fmt: skip
                page.wait_for_selector(item + " button[data-act=withdraw]", timeout=20000)
                assert "answer id" in page.inner_text(item)
                page.click(item + " button[data-act=withdraw]")
                service.wait(lambda: _alert(service, alert_id)["answer"] is None, timeout=20,
                             what="past answer withdrawn")  # fmt: skip
                page.screenshot(path=str(tmp_path / "console-alerts-tab-phone.png"), full_page=True)
                assert page.evaluate("window.__xss") is None
            finally:
                browser.close()
    for shot in tmp_path.glob("console-*.png"):
        keep_artefact(shot)


def test_first_visit_signs_in_gets_events_and_shows_a_telemetry_alert(tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    state = tmp_path / "state"
    calibrate_scene(state)
    telemetry = {"id": "7e1e0000beef", "camera": "printer", "time": "2026-12-07T10:00:00+00:00",
                 "created": time.time() - 60, "repeats": 0, "acknowledged": None, "answer": None,
                 "answer_ids": [], "closed": None, "image": None, "score": None, "votes": 0, "window": 0,
                 "cloud_verdict": None, "cause": "nozzle_temp 262 out of range [180, 250]",
                 "telemetry": {"kind": "out_of_range", "signal": "nozzle_temp", "value": 262.0,
                               "target": None, "limit": "[180, 250]"}}  # fmt: skip
    (state / "api").mkdir(parents=True)
    (state / "api" / "alerts.json").write_text(json.dumps({"version": 1, "alerts": [telemetry]}))
    with api_service(tmp_path) as service, sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = new_page(browser, DESKTOP)
            page.goto(service.url + "/")
            page.wait_for_selector("#login:not([hidden])")  # the first visit: where the token is
            assert "credentials/api_token" in page.inner_text("#login")
            assert "sudo cat /var/lib/layerwatch/api_token" in page.inner_text("#login")
            # the SD image's copy on the FAT boot partition, in words (as text: no markup from the server)
            boot = "layerwatch-token.txt on the SD card's boot partition (LWBOOT)"
            assert boot in page.inner_text("#login") and page.inner_text("#where-boot") == boot
            assert page.evaluate("document.getElementById('where-boot').children.length") == 0
            assert page.evaluate("localStorage.length") == 0
            sign_in(page, service.url)
            # the live events run at once, without a reload
            page.wait_for_function("state.events && state.events.readyState === 1", timeout=20000)
            page.wait_for_function("document.getElementById('live').naturalWidth > 0", timeout=60000)
            assert page.evaluate("localStorage.length") == 0 and "layerwatch" not in page.evaluate(
                "document.cookie"
            )
            # the controls are above the fold at 1280 x 900
            page.wait_for_selector("#alert:not([hidden])", timeout=60000)  # the replay's alert, then
            page.click("#ack")
            page.wait_for_selector("#alert", state="hidden", timeout=20000)
            box = page.locator("#pause").bounding_box()
            assert box is not None and box["y"] + box["height"] <= 900, box
            page.screenshot(path=str(tmp_path / "console-live-1280.png"))
            # the telemetry alert: its signal, value and limit, no broken picture
            page.click("nav button[data-tab=history]")
            item = "#history li[data-alert='7e1e0000beef']"
            page.wait_for_selector(item)
            text = page.inner_text(item)
            assert "nozzle_temp" in text and "262" in text and "[180, 250]" in text
            assert page.evaluate(f'document.querySelectorAll("{item} img").length') == 0
            assert service.get("/api/alerts/7e1e0000beef.jpg").status_code == 404
            page.screenshot(path=str(tmp_path / "console-alerts-1280.png"))
        finally:
            browser.close()
    for shot in tmp_path.glob("console-*.png"):
        keep_artefact(shot)


def test_label_a_recent_frame_in_one_tap_and_the_next_score_moves(tmp_path: Path):
    """The strip of recent frames on a phone: "OK" on a frame the camera calls a failure teaches it (the
    same picture, when the replay shows it again, scores lower), "Undo" takes the answer back."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with api_service(tmp_path) as service, sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = new_page(browser)
            sign_in(page, service.url)
            page.wait_for_selector("#strip .card.failure img", timeout=60000)
            page.dispatch_event("#strip", "pointerdown")  # the user starts answering: the strip holds still
            frame_id = page.get_attribute("#strip .card.failure", "data-frame")
            frames = service.get("/api/cameras/printer/frames").json()
            before = next(f for f in frames if f["frame_id"] == frame_id)
            loop = 12  # the replay: 6 normal then 6 failure pictures, looped
            page.click(f"#strip .card[data-frame='{frame_id}'] button[data-label=ok]")

            def answered() -> dict | None:
                found = [
                    f for f in service.get("/api/cameras/printer/frames").json() if f["frame_id"] == frame_id
                ]
                return found[0] if found and found[0]["answer"] == "ok" else None

            labelled = service.wait(answered, timeout=20, what="the frame answered ok")
            assert labelled["answer_ids"]
            page.wait_for_selector(f"#strip .card[data-frame='{frame_id}'] button[data-label=withdraw]")

            def again() -> dict | None:
                step = before["sequence"]
                frames = service.get("/api/cameras/printer/frames").json()
                later = [f for f in frames if f["sequence"] > step and (f["sequence"] - step) % loop == 0]
                return later[0] if later else None

            repeat = service.wait(again, timeout=30, what="the same picture analysed again")
            assert repeat["score"] < before["score"], (before, repeat)
            page.screenshot(path=str(tmp_path / "console-strip-phone.png"), full_page=True)
            page.click(f"#strip .card[data-frame='{frame_id}'] button[data-label=withdraw]")
            service.wait(lambda: answered() is None, timeout=20, what="the answer taken back")
        finally:
            browser.close()
    for shot in tmp_path.glob("console-*.png"):
        keep_artefact(shot)
