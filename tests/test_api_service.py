"""The HTTP API of a running ``layerwatch run`` over real HTTP on 127.0.0.1 (replay source, real model):
every endpoint, the token rules, the OpenAPI schema, alerts kept across a restart."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from openapi_spec_validator import validate

from tests.api_harness import CORNER_ZONE, TOKEN, api_service, scene

pytestmark = pytest.mark.usefixtures("shipped_model")


def _alert(service) -> dict:  # type: ignore[no-untyped-def]
    return service.wait(lambda: service.status()["active_alerts"], timeout=60, what="active alert")[0]


def test_every_endpoint_token_rules_and_history_across_restart(tmp_path: Path):
    with api_service(tmp_path) as service:
        assert service.get("/api/").text == "OK"
        schema = service.get("/openapi.json").json()
        validate(schema)  # a valid OpenAPI 3 document
        assert {"/api/status", "/api/events", "/api/alerts", "/metrics", "/api/printers"} <= set(
            schema["paths"]
        )

        # status, frames, live view, bridge paths
        camera = service.wait(
            lambda: service.camera().get("score") is not None and service.camera(), what="a frame"
        )
        assert (
            camera["name"] == "printer" and camera["calibrated"] and camera["decision"] in ("ok", "failure")
        )
        assert {"state", "fps", "calibration", "learner"} <= set(camera)
        frame = service.get("/api/cameras/printer/frame.jpg")
        assert frame.headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(frame.content, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (240, 320, 3)
        overlay = service.get("/api/cameras/printer/frame.jpg?overlay=1")
        assert overlay.status_code == 200 and overlay.content != frame.content
        assert service.get("/api/cameras/nope/frame.jpg").status_code == 404
        stream_url = service.url + "/api/cameras/printer/stream"
        with requests.get(stream_url, stream=True, timeout=10, headers=service.auth()) as stream:
            assert stream.headers["content-type"].startswith("multipart/x-mixed-replace")
            chunk = b""
            for part in stream.iter_content(4096):
                chunk += part
                if chunk.count(b"--layerwatchframe") >= 2:
                    break
            assert b"Content-Type: image/jpeg" in chunk and b"\xff\xd8" in chunk
        printers = service.get("/api/printers").json()
        assert printers == [{"printer_id": "printer", "camera": "printer", "model": "camera",
                             "is_online": True, "has_status": True}]  # fmt: skip
        assert service.get("/api/printer/printer").json()["printer_id"] == "printer"
        assert service.get("/api/printer/printer/image").content[:2] == b"\xff\xd8"
        assert service.get("/api/printer/A1M-1").status_code == 404

        # control needs the token; reads too, by default
        assert service.get("/api/status", token=None).status_code == 401
        for path in ("/api/control/acknowledge", "/api/control/pause", "/api/cameras/printer/calibrate"):
            assert service.post(path, {}, token=None).status_code == 401
            assert service.post(path, {}, token="wrong").status_code == 401

        # an alert: in the history, with its image and countdown; SSE carries it
        events = requests.get(service.url + "/api/events", stream=True, timeout=30, headers=service.auth())
        alert = _alert(service)
        # no printer and no relay: nothing will happen to the print by itself, and the panel says so
        assert alert["plan"] == {"kind": "none", "action": None, "phase": "none"}
        history = service.get("/api/alerts").json()
        assert history[0]["id"] == alert["alert"] and history[0]["camera"] == "printer"
        evidence = service.get(f"/api/alerts/{alert['alert']}.jpg")
        assert evidence.status_code == 200 and evidence.content[:2] == b"\xff\xd8"
        assert service.get("/api/alerts/000000000000.jpg").status_code == 404
        ack = service.post("/api/control/acknowledge", {"camera": "printer"})
        assert ack.status_code == 202 and ack.json()["command"] == "acknowledge"
        service.wait(lambda: not service.status()["active_alerts"], timeout=10, what="acknowledged alert")
        acknowledged = service.get("/api/alerts").json()[0]
        assert acknowledged["id"] == alert["alert"] and acknowledged["acknowledged"]
        kinds = set()
        for line in events.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                kinds.add(line[7:])
            if {"camera", "alert_update"} <= kinds:
                break
        events.close()

        # answers the MQTT way: false alarm on the alert, label a frame, unknown words refused
        answer = service.post("/api/cameras/printer/commands/false_alarm", {"payload": alert["alert"]})
        assert answer.status_code == 202 and answer.json()["command"] == "answer"
        service.wait(lambda: service.get("/api/alerts").json()[0]["answer"] == "false_alarm", what="answer")
        frame_id = service.camera()["frame_id"]
        assert service.post("/api/commands/label", {"payload": f"{frame_id} ok"}).status_code == 202
        assert service.post("/api/commands/label", {"payload": "nonsense"}).status_code == 422
        assert service.post("/api/commands/explode", {}).status_code == 404

        # the other controls are accepted and reach the loop
        for word in ("test_alarm", "pause_print", "cancel_print"):
            assert service.post(f"/api/control/{word}", {}).status_code == 202
        assert service.post("/api/control/pause", {"camera": "printer"}).status_code == 202
        service.wait(lambda: service.camera()["state"] == "paused", timeout=10, what="paused")
        assert service.post("/api/control/resume", {"camera": "printer"}).status_code == 202
        service.wait(lambda: service.camera()["state"] != "paused", timeout=10, what="resumed")
        assert service.post("/api/control/pause", {"camera": "nope"}).status_code == 404

        # calibration: capture 3 normal frames now; upload a failure example
        _, data = cv2.imencode(".jpg", scene(99, True))
        failures_before = service.camera()["learner"]["failure"]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        examples = service.url + "/api/cameras/printer/examples"
        upload = requests.post(examples + "?label=failure", data=data.tobytes(),
                               headers={**auth, "Content-Type": "image/jpeg"}, timeout=10)  # fmt: skip
        assert upload.status_code == 202
        service.wait(
            lambda: service.camera()["learner"]["failure"] == failures_before + 1, what="example learned"
        )
        refused = requests.post(examples, data=b"not a picture", headers=auth, timeout=10)
        assert refused.status_code == 422
        try:  # the server answers 413 before the body and closes; a busy client may still be sending it
            too_big = requests.post(examples, data=b"\0" * (8 * 1024 * 1024 + 1), headers=auth, timeout=30)
            assert too_big.status_code == 413
        except requests.ConnectionError:  # reset while sending: refused all the same
            pass
        assert service.post("/api/cameras/printer/calibrate", {"frames": 3}).status_code == 202
        service.wait(
            lambda: service.camera()["calibration"] == "3 normal + 0 failure frames", what="calibration"
        )

        # ignore zones: stored in the state dir, shown back
        bad = requests.put(service.url + "/api/cameras/printer/ignore_zones", json={"zones": [{"x0": 2}]},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)  # fmt: skip
        assert bad.status_code == 422
        put = requests.put(service.url + "/api/cameras/printer/ignore_zones", json={"zones": [CORNER_ZONE]},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)  # fmt: skip
        assert put.status_code == 202
        service.wait(lambda: service.camera()["ignore_zones"], what="zones in the status")
        stored = json.loads((service.state_dir / "cameras" / "printer" / "ignore_zones.json").read_text())
        assert stored["zones"][0]["x0"] == CORNER_ZONE["x0"]

        # metrics and settings: numbers, and no secret anywhere
        metrics = service.get("/metrics").text
        for name in ("layerwatch_frames_analysed_total", "layerwatch_decisions_total",
                     "layerwatch_failure_score", "layerwatch_inference_latency_seconds_bucket",
                     "layerwatch_alerts_total"):  # fmt: skip
            assert name in metrics, name
        settings = service.get("/api/config").json()
        assert settings["api"]["token"] == "***" and settings["api"]["listen"].startswith("127.0.0.1:")
        for path in ("/api/config", "/api/status", "/api/alerts", "/metrics", "/openapi.json"):
            assert TOKEN not in service.get(path).text, path
        alert_ids = [a["id"] for a in service.get("/api/alerts").json()]

    # a restart keeps the history and its images
    with api_service(tmp_path) as service:
        again = service.get("/api/alerts").json()
        assert [a["id"] for a in again][-len(alert_ids) :] == alert_ids
        assert service.get(f"/api/alerts/{alert_ids[-1]}.jpg").status_code == 200
        assert TOKEN not in (tmp_path / "service.log").read_text()


def test_reads_protected_by_default_and_the_console_login(tmp_path: Path):
    with api_service(tmp_path, calibrated=False) as service:
        assert service.get("/api/", token=None).text == "OK"  # the health check tells nothing: open
        for path in ("/api/status", "/api/config", "/api/alerts", "/metrics", "/api/printers",
                     "/api/cameras/printer/frame.jpg"):  # fmt: skip
            assert service.get(path, token=None).status_code == 401, path
        assert service.get("/api/status", token="wrong").status_code == 401
        assert service.get("/api/status").status_code == 200
        assert service.get("/", token=None).status_code == 200  # the page loads, then asks to sign in
        session = requests.get(service.url + "/api/session", timeout=10).json()
        assert session["signed_in"] is False and session["protect_reads"] is True
        assert session["token_at"]["sd_card"] == "credentials/api_token"
        # the login: a wrong token is refused, the right one sets an HttpOnly SameSite=Strict cookie
        wrong = requests.post(service.url + "/api/login", json={"token": "nope"}, timeout=10)
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        login = requests.post(service.url + "/api/login", json={"token": TOKEN}, timeout=10)
        cookie = login.headers["set-cookie"]
        assert login.status_code == 204 and "HttpOnly" in cookie and "SameSite=strict" in cookie, cookie
        assert TOKEN not in cookie  # an HMAC of the token, not the token
        browser = requests.Session()
        browser.cookies.update(login.cookies)
        assert browser.get(service.url + "/api/status", timeout=10).status_code == 200
        assert browser.get(service.url + "/api/session", timeout=10).json()["signed_in"] is True
        # control with the cookie needs the console's header too (a form on another site cannot add it)
        assert browser.post(service.url + "/api/control/acknowledge", json={}, timeout=10).status_code == 401
        console = {"X-Layerwatch-Console": "1"}
        ok = browser.post(service.url + "/api/control/acknowledge", json={}, headers=console, timeout=10)
        assert ok.status_code == 202
        # the old cookie holding the raw token opens nothing any more
        old = requests.get(service.url + "/api/status", cookies={"layerwatch_token": TOKEN}, timeout=10)
        assert old.status_code == 401
        # sign out: the cookie is removed
        out = browser.post(service.url + "/api/logout", timeout=10)
        assert (
            out.status_code == 204 and browser.get(service.url + "/api/status", timeout=10).status_code == 401
        )
        # security headers: no inline script, no framing
        page = requests.get(service.url + "/", timeout=10)
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        favicon = requests.get(service.url + "/favicon.ico", timeout=10)
        assert favicon.status_code == 200 and favicon.headers["content-type"].startswith("image/svg")


def test_health_and_metrics_exposure_is_configurable(tmp_path: Path):
    extra = "public_health = false\npublic_metrics = true"
    with api_service(tmp_path, calibrated=False, api_extra=extra) as service:
        assert service.get("/api/", token=None).status_code == 401
        assert service.get("/api/").text == "OK"
        assert "layerwatch_" in service.get("/metrics", token=None).text
        assert service.get("/api/status", token=None).status_code == 401
    (tmp_path / "state").rename(tmp_path / "state-1")
    with api_service(tmp_path, calibrated=False, api_extra="protect_reads = false") as service:
        assert service.get("/api/status", token=None).status_code == 200
        assert service.post("/api/control/acknowledge", {}, token=None).status_code == 401
