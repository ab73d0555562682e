"""Secrets never reach a log line: every channel fails in the ways that tend to leak (refused
connections, 401/403 answers, retries) with all logging at DEBUG, and the log is grepped.

The other integration tests grep their own caplog and subprocess stderr the same way
(tests/test_discord.py, test_telegram.py, test_mqtt_commands_discovery.py, test_mqtt_outbox.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from appliance.actions import notifiers, printer_control
from appliance.actions.mqtt import sink as mqtt_sink
from appliance.config.model import LayerwatchConfig
from appliance.service.commands import Command, CommandKind, CommandQueue
from appliance.service.log_redaction import redact, register_secret
from appliance.service.wiring import ServiceContext
from tests.alert_scenario import synthetic_alert
from tests.http_peers import serving
from tests.mqtt_fixtures import free_port

WEBHOOK_PATH = "/api/webhooks/777/n0-l0gs-w3bh00k-t0k3n"
BOT_TOKEN = "424242:AAG-n0-l0gs-b0t-t0k3n"
API_KEY = "n0-l0gs-pr1nt3r-k3y"
PASSWORD = "n0-l0gs-mqtt-p4ssw0rd"


def test_no_secret_in_any_log_record(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    dead = free_port()  # nothing listens: connection refused for Discord and MQTT
    with serving((401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, {})) as peer:
        tree = {
            "mqtt": {"broker_url": f"mqtt://127.0.0.1:{dead}", "username": "lw", "password": PASSWORD},
            "notify": {
                "discord": {"webhook_url": f"http://127.0.0.1:{dead}{WEBHOOK_PATH}", "retry_backoff_s": 0.1},
                "telegram": {"bot_token": BOT_TOKEN, "chat_id": "1", "api_url": peer.url},
            },
            "alarm": {"countdown_s": 0},
            "printer": {"type": "octoprint", "url": peer.url, "api_key": API_KEY, "poll_interval_s": 0.2,
                        "retries": 1, "retry_backoff_s": 0.1},
        }  # fmt: skip
        config = LayerwatchConfig.model_validate(tree)
        context = ServiceContext(CommandQueue(), lambda c: {}, ["printer"], tmp_path)
        sinks = [
            *mqtt_sink.create_sinks(config, context),
            *notifiers.create_sinks(config, context),
            *printer_control.create_sinks(config, context),
        ]
        for sink in sinks:
            sink.start()  # type: ignore[attr-defined]
        for sink in sinks:
            sink.on_alert("printer", *synthetic_alert())
            sink.on_command(Command(CommandKind.TEST_ALARM, origin="test"))  # type: ignore[attr-defined]
        time.sleep(1.5)
        for sink in sinks:
            sink.stop()  # type: ignore[attr-defined]
        assert peer.posts(f"/bot{BOT_TOKEN}/")  # Telegram was tried (and refused) ...
        assert peer.posts("/api/job")  # ... and so was the printer
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "rejected for good" in text and "refused" in text and "attempt 1 failed" in text  # it did log
    for secret in (WEBHOOK_PATH, "n0-l0gs-w3bh00k-t0k3n", BOT_TOKEN, API_KEY, PASSWORD):
        assert secret not in text, secret


def test_redaction_covers_foreign_loggers(caplog: pytest.LogCaptureFixture):
    """urllib3 logs request paths at DEBUG: a registered token is masked there too."""
    caplog.set_level(logging.DEBUG)
    # the service's logging setup quiets urllib3 to WARNING; a test before this one may have run it
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    register_secret(BOT_TOKEN)
    logging.getLogger("urllib3.connectionpool").debug('"POST /bot%s/sendPhoto HTTP/1.1" 200', BOT_TOKEN)
    assert BOT_TOKEN not in caplog.text and "/bot***/sendPhoto" in caplog.text
    assert redact(f"x {BOT_TOKEN} y") == "x *** y"
