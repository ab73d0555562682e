"""The web console in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against
a running service: the live view shows a frame, an alert appears with its countdown, acknowledge ends it,
an ignore zone drawn on the frame is saved and then suppresses the failure inside it. Screenshots are kept
in the test's folder (and in .ci/artefacts when that folder exists)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.api_harness import api_service, keep_artefact, sign_in
from tests.console_browser import CONSOLE_MARKS, launch, new_page

pytestmark = CONSOLE_MARKS


def _counter(metrics: str, decision: str) -> float:
    match = re.search(
        rf'layerwatch_decisions_total{{camera="printer",decision="{decision}"}} ([0-9.e+]+)', metrics
    )
    return float(match.group(1)) if match else 0.0


def _analysed(metrics: str) -> float:
    match = re.search(r'layerwatch_frames_analysed_total{camera="printer"} ([0-9.e+]+)', metrics)
    return float(match.group(1)) if match else 0.0


def test_console_live_view_alert_acknowledge_and_ignore_zone(tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = []
    with api_service(tmp_path) as service, sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = new_page(browser)
            sign_in(page, service.url)
            # the live view (MJPEG) shows a frame, with decision and score
            page.wait_for_function("document.getElementById('live').naturalWidth > 0", timeout=60000)
            page.wait_for_function(
                "document.getElementById('score').textContent !== 'score -'", timeout=30000
            )
            shots.append(tmp_path / "console-live.png")
            page.screenshot(path=str(shots[-1]), full_page=True)

            # an alert appears; no printer or relay is set up, and the panel says nothing will happen
            page.wait_for_selector("#alert:not([hidden])", timeout=60000)
            assert "no printer or relay" in page.inner_text("#alert-plan")
            page.wait_for_function("document.getElementById('alert-image').naturalWidth > 0", timeout=30000)
            shots.append(tmp_path / "console-alert.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            alert_id = service.get("/api/alerts").json()[0]["id"]

            # acknowledge stops it: the panel goes, the history says so
            page.click("#ack")
            page.wait_for_selector("#alert", state="hidden", timeout=30000)
            acknowledged = next(a for a in service.get("/api/alerts").json() if a["id"] == alert_id)
            assert acknowledged["acknowledged"]
            page.click("nav button[data-tab=history]")
            page.wait_for_selector("#history img", timeout=30000)

            # draw an ignore zone over the top right corner of the frame and save it
            page.click("nav button[data-tab=zones]")
            page.wait_for_function("document.getElementById('zone-frame').naturalWidth > 0", timeout=30000)
            box = page.locator("#zone-canvas").bounding_box()
            assert box is not None and box["width"] > 100
            page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + 1)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.3, steps=5)
            page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] * 0.52, steps=5)
            page.mouse.up()
            page.click("#zones-save")
            page.wait_for_function("document.getElementById('zones-status').textContent.startsWith('1 zone')")
            zones = service.wait(lambda: service.camera()["ignore_zones"], timeout=10, what="stored zone")
            assert (
                len(zones) == 1 and zones[0]["x0"] > 0.5 and zones[0]["y0"] < 0.05 and zones[0]["y1"] > 0.45
            )
            shots.append(tmp_path / "console-zone.png")
            page.screenshot(path=str(shots[-1]), full_page=True)

            # the failure inside the zone is suppressed: whole loops of the replay (6 normal + 6 failure
            # frames) go by without a failure decision or a new alert
            time.sleep(0.5)
            before = service.get("/metrics").text
            alerts_before = len(service.get("/api/alerts").json())
            service.wait(lambda: _analysed(service.get("/metrics").text) >= _analysed(before) + 36,
                         timeout=60, what="three more replay loops")  # fmt: skip
            after = service.get("/metrics").text
            assert _counter(before, "failure") > 0  # the same frames were failures before the zone
            assert _counter(after, "failure") == _counter(before, "failure"), (
                "a failure inside the zone counted"
            )
            assert len(service.get("/api/alerts").json()) == alerts_before
            page.click("nav button[data-tab=live]")
            page.wait_for_timeout(1500)
            shots.append(tmp_path / "console-after-zone.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
        finally:
            browser.close()
    for shot in shots:
        assert shot.stat().st_size > 1000
        keep_artefact(shot)
