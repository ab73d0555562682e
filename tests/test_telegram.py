"""Telegram sendPhoto against a local HTTP peer; a dead channel blocks neither the loop nor others."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.actions import notifiers
from appliance.config.model import LayerwatchConfig
from appliance.service.commands import Command, CommandKind, CommandQueue
from appliance.service.wiring import ServiceContext
from tests.alert_scenario import synthetic_alert
from tests.http_peers import HttpPeer, serving
from tests.mqtt_fixtures import free_port

TOKEN = "123456:AAH-t3l3gram-s3cret-t0ken"


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    with serving() as peer:
        yield peer


def _sink(tmp_path: Path, telegram: dict, discord: dict | None = None):
    tree: dict = {"notify": {"telegram": {"bot_token": TOKEN, "chat_id": "-100200300", **telegram}}}
    if discord:
        tree["notify"]["discord"] = discord
    context = ServiceContext(CommandQueue(), lambda c: {}, ["printer"], tmp_path)
    [sink] = notifiers.create_sinks(LayerwatchConfig.model_validate(tree), context)
    sink.start()  # type: ignore[attr-defined]
    return sink


def test_send_photo_with_caption_into_a_topic(
    http_peer: HttpPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    sink = _sink(tmp_path, {"api_url": http_peer.url, "message_thread_id": 42})
    alert, result, jpeg = synthetic_alert()
    sink.on_alert("printer", alert, result, jpeg)
    [post] = http_peer.wait_posts(1)
    sink.on_command(Command(CommandKind.TEST_ALARM, origin="test"))  # type: ignore[attr-defined]
    posts = http_peer.wait_posts(2)
    sink.stop()  # type: ignore[attr-defined]
    assert post.path == f"/bot{TOKEN}/sendPhoto"
    assert post.parts["chat_id"].text == "-100200300" and post.parts["message_thread_id"].text == "42"
    caption = post.parts["caption"].text
    assert "print failure" in caption and "Score 0.93" in caption and alert.id in caption
    assert len(caption) <= 1024
    photo = post.parts["photo"]
    assert photo.content_type == "image/jpeg" and photo.data == jpeg and photo.filename == "evidence.jpg"
    assert posts[1].path == f"/bot{TOKEN}/sendMessage" and "test" in posts[1].field("text")
    assert TOKEN not in caplog.text


def test_429_parameters_retry_after_and_5xx(http_peer: HttpPeer, tmp_path: Path):
    http_peer.script = [
        (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
               "parameters": {"retry_after": 1}}, {}),
        (503, {"ok": False, "error_code": 503, "description": "Service Unavailable"}, {}),
    ]  # fmt: skip
    sink = _sink(tmp_path, {"api_url": http_peer.url, "retry_backoff_s": 0.2})
    sink.on_alert("printer", *synthetic_alert())
    posts = http_peer.wait_posts(3, timeout=10)
    time.sleep(0.5)
    sink.stop()  # type: ignore[attr-defined]
    assert len(http_peer.posts()) == 3
    assert posts[1].at - posts[0].at >= 0.99  # retry_after from Telegram's parameters
    assert posts[2].at - posts[1].at >= 0.19


def test_a_dead_channel_blocks_neither_the_loop_nor_the_other_channel(http_peer: HttpPeer, tmp_path: Path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    sink = _sink(tmp_path, {"api_url": dead, "retry_backoff_s": 0.2},
                 discord={"webhook_url": http_peer.url + "/api/webhooks/1/tok-abcdef"})  # fmt: skip
    started = time.monotonic()
    for _ in range(3):
        sink.on_alert("printer", *synthetic_alert())
    assert time.monotonic() - started < 1.0  # not the peer's timeout; fsynced outbox writes can take 0.1 s
    http_peer.wait_posts(3, "/api/webhooks/")  # Discord delivers all three
    sink.stop()  # type: ignore[attr-defined]
    assert len(list((tmp_path / "outbox" / "telegram").glob("*.json"))) == 3  # kept for later
