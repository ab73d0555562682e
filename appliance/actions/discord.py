"""Discord webhook alerts: one message with an embed (state, score, description) and the evidence
JPEG as a multipart attachment shown inside the embed.

The request is ``POST <webhook_url>?wait=true`` with two form parts, as Discord documents for
file uploads: ``payload_json`` (the message JSON, whose ``attachments`` list names the file) and
``files[0]`` (``evidence.jpg``, ``image/jpeg``). Retries, 429 and backoff: :mod:`.outbox` and
:mod:`.http_delivery`. The webhook URL is the secret: it is never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from appliance.actions.dispatcher import Notification
from appliance.actions.http_delivery import post
from appliance.actions.outbox import Outbox, OutboxWorker
from appliance.config.integrations import DiscordConfig
from appliance.service.commands import Command
from appliance.service.log_redaction import register_secret

logger = logging.getLogger(__name__)

COLOUR_ALERT = 0xE53935  # red
COLOUR_TEST = 0x1E88E5  # blue
FILENAME = "evidence.jpg"
VIDEO_LIMIT = 25 * 1024 * 1024  # a webhook's upload limit: a larger timelapse is announced without the file


def discord_message(notification: Notification, username: str | None = None) -> dict[str, Any]:
    """The webhook's JSON (``payload_json``) for ``notification``."""
    fields = [{"name": "Camera", "value": notification.camera or "all", "inline": True}]
    data = notification.fields
    if "state" in data:
        fields.append({"name": "State", "value": str(data["state"]), "inline": True})
    if "score" in data:
        fields.append({"name": "Score", "value": f"{float(data['score']):.2f}", "inline": True})
    if data.get("cloud_verdict") is not None:
        fields.append({"name": "Cloud verdict", "value": str(data["cloud_verdict"]), "inline": True})
    if "id" in data:
        fields.append({"name": "Alert", "value": f"{data['id']} #{data.get('repeat', 0)}", "inline": True})
    embed: dict[str, Any] = {
        "title": notification.title[:256],
        "description": notification.description[:4096],
        "color": COLOUR_ALERT if notification.kind == "alert" else COLOUR_TEST,
        "fields": fields,
        "timestamp": notification.time,
    }
    message: dict[str, Any] = {
        "content": f"**{notification.title}**"[:2000],
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }
    if notification.image is not None:
        embed["image"] = {"url": f"attachment://{FILENAME}"}
        message["attachments"] = [{"id": 0, "filename": FILENAME, "description": "evidence"}]
    if username:
        message["username"] = username
    return message


class DiscordNotifier:
    """A :class:`~appliance.actions.dispatcher.Notifier` posting to one webhook."""

    name = "discord"

    def __init__(self, config: DiscordConfig, outbox_dir: Path, session: requests.Session | None = None):
        if config.webhook_url is None:
            raise ValueError("Discord is not configured (notify.discord.webhook_url)")
        self.config = config
        self._url = config.webhook_url.get_secret_value()
        register_secret(self._url)
        self._session = session or requests.Session()
        self.worker = OutboxWorker(
            self.name, Outbox(outbox_dir), self.deliver,
            config.retry_backoff_s, config.retry_backoff_max_s, config.max_age_s,
        )  # fmt: skip

    def deliver(self, notification: Notification) -> None:
        """One POST; raises DeliveryError (retry) or DeliveryRejectedError (give up)."""
        message = discord_message(notification, self.config.username)
        files: dict[str, Any] | None = None
        video = notification.fields.get("video")
        if isinstance(video, str) and Path(video).is_file() and Path(video).stat().st_size <= VIDEO_LIMIT:
            message["attachments"] = [{"id": 0, "filename": "timelapse.mp4", "description": "timelapse"}]
            files = {"files[0]": ("timelapse.mp4", Path(video).read_bytes(), "video/mp4")}
        elif notification.image:
            files = {"files[0]": (FILENAME, notification.image, "image/jpeg")}
        data = {"payload_json": json.dumps(message)}
        post(
            self._session, self._url, self.name, self.config.timeout_s,
            params={"wait": "true"}, data=data, files=files,
        )  # fmt: skip

    def publish(self, notification: Notification) -> None:
        if self.worker.outbox.put(notification):
            self.worker.wake()

    def subscribe(self, handler: Callable[[Command], None]) -> None:
        """A webhook cannot receive anything: no commands come from Discord."""

    def start(self) -> None:
        logger.info("Discord webhook alerts on (at most %d per hour)", self.config.max_alerts_per_hour)
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self._session.close()
