"""Fault suite, issue 33 item 1: an undeliverable outbox entry never holds back the ones behind it.

A real ``layerwatch run`` with Discord and Telegram pointed at local HTTP peers and MQTT at a real
mosquitto (all on 127.0.0.1) starts with each outbox already holding, oldest first:

* a poisoned entry whose top-level shape is right but whose content cannot be sent (``"fields":
  {"score": "high"}`` for Discord and Telegram, a camera name with ``#`` for MQTT);
* for Discord and Telegram a valid entry the peer answers 503 forever (transient: it backs off on its own);
* three valid alerts.

The three alerts arrive on every channel within seconds, the poisoned entries are in ``rejected/`` with an
``outbox_entry_set_aside`` event each on ``P/event``, and the stuck entry is retried while the others went.
Unit-level checks of the same rules (validation at ``put``, per-entry backoff) are at the end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from appliance.actions.dispatcher import Notification
from appliance.actions.outbox import Outbox, OutboxWorker
from appliance.errors import DeliveryError
from tests.fault_process import LiveService
from tests.http_peers import Request, serving
from tests.mqtt_fixtures import Broker, Subscriber
from tests.service_harness import write_config

pytestmark = [pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

BASE = "layerwatch/layerwatch"
TOKEN = "777000:AAE-p0is0n-t0k3n"
DELIVERY_S = 15.0  # the queue behind a poisoned entry must be delivered within this (measured: 1-3 s)


def entry(folder: Path, n: int, key: str, camera: str = "printer", **fields: object) -> None:
    """An outbox file as Outbox.put writes it, ``n`` ns after a common start (so the order is fixed)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {"key": key, "kind": "alert", "camera": camera, "title": f"{camera}: print failure",
            "description": "test", "time": "2026-01-01T00:00:00+00:00", "created": time.time(),
            "fields": {"id": key, "repeat": 0, "score": 0.9, "state": "failure", **fields}}  # fmt: skip
    (folder / f"{1_700_000_000_000_000_000 + n:020d}-{key}.json").write_text(json.dumps(data))


def test_a_poisoned_entry_is_set_aside_and_the_queue_behind_it_delivered(
    tmp_path: Path, synthetic_clip: Path, mosquitto: Broker
) -> None:
    outbox = tmp_path / "state" / "outbox"
    for channel in ("discord", "telegram"):
        entry(outbox / channel, 0, "poison", score="high")
        entry(outbox / channel, 1, "stuck")
        for n in range(3):
            entry(outbox / channel, 2 + n, f"good{n}")
    entry(outbox / "mqtt", 0, "poison", camera="bad#name")
    for n in range(3):
        entry(outbox / "mqtt", 2 + n, f"good{n}")

    def stuck(request: Request) -> tuple[int, object, dict[str, str]] | None:
        return (503, {"ok": False}, {}) if b"stuck" in request.body else None

    with serving((200, {"ok": True}, {})) as discord, serving((200, {"ok": True}, {})) as telegram:
        discord.responder = telegram.responder = stuck
        extra = (
            f'[mqtt]\nbroker_url = "{mosquitto.url}"\n'
            f'[notify.discord]\nwebhook_url = "{discord.url}/api/webhooks/1/s3cret"\nretry_backoff_s = 0.5\n'
            f'[notify.telegram]\nbot_token = "{TOKEN}"\nchat_id = "-1001"\napi_url = "{telegram.url}"\n'
            "retry_backoff_s = 0.5\n"
        )
        config = write_config(tmp_path, synthetic_clip, extra)
        watcher = Subscriber(mosquitto.port)
        watcher.subscribe(f"{BASE}/#")
        service = LiveService(config)
        try:
            started = time.monotonic()
            discord_posts = discord.wait_posts(4, timeout=60)  # stuck (at least once) + three good ones
            telegram.wait_posts(4, timeout=DELIVERY_S)
            deadline = time.monotonic() + DELIVERY_S
            while time.monotonic() < deadline:
                got = {e.get("id") for e in watcher.json_on(f"{BASE}/printer/event")}
                good = sum(f"good{n}".encode() in r.body for n in range(3) for r in discord.posts())
                if {"good0", "good1", "good2"} <= got and good >= 3:
                    break
                time.sleep(0.1)
            took = time.monotonic() - started
            time.sleep(2.0)  # the stuck entries are retried meanwhile
            events = [
                e for e in watcher.json_on(f"{BASE}/event") if e.get("type") == "outbox_entry_set_aside"
            ]
        finally:
            service.terminate()
            watcher.close()
        discord_posts, telegram_posts = discord.posts(), telegram.posts()
    bodies = {name: [r.body for r in posts] for name, posts in (("discord", discord_posts),
                                                                   ("telegram", telegram_posts))}  # fmt: skip
    mqtt_ids = [e.get("id") for e in watcher.json_on(f"{BASE}/printer/event")]
    print(f"queue behind the poisoned entries delivered {took:.1f} s after the start; "
          f"set-aside events {[e['channel'] for e in events]}")  # fmt: skip
    for channel, posted in bodies.items():
        for n in range(3):
            assert sum(f"good{n}".encode() in b for b in posted) == 1, (channel, n)
        assert not any(b"poison" in b for b in posted), channel
        assert sum(b"stuck" in b for b in posted) >= 2, f"{channel}: the stuck entry was not retried"
        assert (outbox / channel / "rejected").is_dir()
        assert [p.name for p in (outbox / channel / "rejected").glob("*.json")] == [
            "01700000000000000000-poison.json"
        ]
    assert sorted(i for i in mqtt_ids if i) == ["good0", "good1", "good2"]
    assert [p.name for p in (outbox / "mqtt" / "rejected").glob("*.json")] == [
        "01700000000000000000-poison.json"
    ]
    assert sorted(e["channel"] for e in events) == ["discord", "mqtt", "telegram"]
    assert all("poison" in e["entry"] for e in events)
    assert took < DELIVERY_S + 60


def test_put_refuses_what_no_channel_could_send(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "discord")
    for bad in ({"camera": "a#b"}, {"fields": {"score": "high"}}, {"fields": {"repeat": "1"}},
                {"key": "../x"}):  # fmt: skip
        notification = Notification(**{"key": "k", "kind": "alert", "camera": "printer", "title": "t",
                                       "description": "d", **bad})  # type: ignore[arg-type]  # fmt: skip
        with pytest.raises((TypeError, ValueError)):
            outbox.put(notification)
    assert outbox.entries() == []


def test_a_transient_failure_backs_off_that_entry_only(tmp_path: Path) -> None:
    """An entry that fails again and again (5xx, timeouts) waits on its own; the others go on at once."""
    outbox = Outbox(tmp_path / "telegram")
    for key in ("stuck", "a", "b"):
        outbox.put(Notification(key=key, kind="alert", camera="printer", title="t", description="d"))
    delivered: list[str] = []
    attempts: list[float] = []

    def deliver(notification: Notification) -> None:
        if notification.key == "stuck":
            attempts.append(time.monotonic())
            raise DeliveryError("HTTP 503")
        delivered.append(notification.key)

    worker = OutboxWorker("telegram", outbox, deliver, backoff_s=0.3, backoff_max_s=1.0)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while (len(delivered) < 2 or len(attempts) < 3) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert delivered == ["a", "b"]
    assert len(attempts) >= 3 and attempts[2] - attempts[1] >= 0.5  # 0.3 s, then 0.6 s: backoff doubles
