"""Pause print and cancel print from the API reach a real OctoPrint stand-in on 127.0.0.1 through the
service's printer control, and the outcome comes back on the event stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.api_harness import api_service
from tests.http_peers import serving

pytestmark = pytest.mark.usefixtures("shipped_model")


def test_pause_and_cancel_print_from_the_api(tmp_path: Path):
    with serving((204, None, {})) as octoprint:
        printer = (f'[printer]\ntype = "octoprint"\nurl = "{octoprint.url}"\napi_key = "k3y-0123456789"\n'
                   "poll_interval_s = 0\naction = \"none\"\n")  # fmt: skip
        with api_service(tmp_path, calibrated=False, extra=printer) as service:
            events = requests.get(
                service.url + "/api/events", stream=True, timeout=30, headers=service.auth()
            )
            assert service.status()["printer_action"] == "none"
            assert service.post("/api/control/pause_print", {"camera": "printer"}).status_code == 202
            [pause] = octoprint.wait_posts(1, "/api/job")
            assert pause.json() == {"command": "pause", "action": "pause"}
            assert service.post("/api/control/cancel_print", {}).status_code == 202
            posts = octoprint.wait_posts(2, "/api/job")
            assert posts[1].json() == {"command": "cancel"}
            outcomes = []
            for line in events.iter_lines(decode_unicode=True):
                if line.startswith("data: ") and '"printer_action"' in line:
                    outcomes.append(json.loads(line[6:]))
                    if len(outcomes) == 2:
                        break
            events.close()
            assert [(o["action"], o["outcome"]) for o in outcomes] == [("pause", "done"), ("cancel", "done")]
            assert "k3y-0123456789" not in service.get("/api/config").text
