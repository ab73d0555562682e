"""Discord webhook against a local HTTP peer: multipart parsed for real, 429 and 5xx retried."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.actions import notifiers
from appliance.config.model import LayerwatchConfig
from appliance.service.commands import CommandQueue
from appliance.service.wiring import ServiceContext
from tests.alert_scenario import synthetic_alert
from tests.http_peers import HttpPeer, serving

TOKEN_PATH = "/api/webhooks/1234567890/s3cr3t-w3bh00k-t0k3n"


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    with serving() as peer:
        yield peer


def _dispatcher(peer: HttpPeer, tmp_path: Path, **discord: object):
    config = LayerwatchConfig.model_validate(
        {"notify": {"discord": {"webhook_url": peer.url + TOKEN_PATH, "retry_backoff_s": 0.2, **discord}}}
    )
    context = ServiceContext(CommandQueue(), lambda c: {}, ["printer"], tmp_path)
    [sink] = notifiers.create_sinks(config, context)
    sink.start()  # type: ignore[attr-defined]
    return sink


def test_alert_is_one_multipart_post_with_embed_and_image(
    http_peer: HttpPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    sink = _dispatcher(http_peer, tmp_path)
    alert, result, jpeg = synthetic_alert()
    started = time.monotonic()
    sink.on_alert("printer", alert, result, jpeg)
    assert time.monotonic() - started < 0.1  # the loop never waits for Discord
    [post] = http_peer.wait_posts(1, TOKEN_PATH)
    time.sleep(0.3)
    sink.stop()  # type: ignore[attr-defined]
    assert len(http_peer.posts()) == 1
    assert post.query == {"wait": ["true"]}
    assert post.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    message = json.loads(post.parts["payload_json"].text)
    [embed] = message["embeds"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["State"] == "failure" and fields["Score"] == "0.93" and fields["Camera"] == "printer"
    assert alert.id in fields["Alert"]
    assert "verification frames" in embed["description"]
    assert embed["image"] == {"url": "attachment://evidence.jpg"}
    assert message["attachments"][0]["filename"] == "evidence.jpg"
    image = post.parts["files[0]"]
    assert image.filename == "evidence.jpg" and image.content_type == "image/jpeg" and image.data == jpeg
    assert not list((tmp_path / "outbox" / "discord").glob("*.json"))
    assert "s3cr3t-w3bh00k-t0k3n" not in caplog.text


def test_429_retry_after_and_500_are_retried_without_duplicates(http_peer: HttpPeer, tmp_path: Path):
    http_peer.script = [
        (429, {"message": "You are being rate limited.", "retry_after": 0.4, "global": False}, {}),
        (500, {"message": "oops"}, {}),
        (502, None, {}),
    ]
    sink = _dispatcher(http_peer, tmp_path)
    sink.on_alert("printer", *synthetic_alert())
    posts = http_peer.wait_posts(4, TOKEN_PATH, timeout=10)
    time.sleep(0.5)
    sink.stop()  # type: ignore[attr-defined]
    assert len(http_peer.posts()) == 4  # 429, 500, 502, then accepted once: no duplicate
    assert posts[1].at - posts[0].at >= 0.39  # waited what Discord asked
    assert posts[2].at - posts[1].at >= 0.19 and posts[3].at - posts[2].at >= 0.39  # backoff doubles
    assert len({p.parts["payload_json"].text for p in posts}) == 1


def test_refused_webhook_is_not_retried_and_rate_limit_applies(http_peer: HttpPeer, tmp_path: Path):
    http_peer.script = [(404, {"message": "Unknown Webhook", "code": 10015}, {})]
    sink = _dispatcher(http_peer, tmp_path, max_alerts_per_hour=2)
    for _ in range(3):
        sink.on_alert("printer", *synthetic_alert())
    http_peer.wait_posts(3, TOKEN_PATH)
    time.sleep(0.6)
    sink.stop()  # type: ignore[attr-defined]
    # the 404 one is not retried; the third alert is over the limit but an alert is never dropped (issue 14)
    assert len(http_peer.posts()) == 3
    assert len(list((tmp_path / "outbox" / "discord" / "rejected").glob("*.json"))) == 1
