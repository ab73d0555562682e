"""Telegram bot alerts: ``sendPhoto`` with the evidence JPEG and a caption, into a chat and
optionally one forum topic (``message_thread_id``), as printer-realtime-bridge does.

``POST <api_url>/bot<token>/sendPhoto`` as multipart: ``chat_id``, ``caption`` (at most 1024
characters), ``message_thread_id`` if set, and the ``photo`` file; without an image
``sendMessage`` with ``text``; a job's timelapse (``fields.video``, see :mod:`appliance.history`)
goes with ``sendVideo`` (``video`` file, at most 50 MB as the Bot API takes). Telegram answers 429
with ``parameters.retry_after`` (seconds), which the outbox honours. The token is part of the URL
and is never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from appliance.actions.dispatcher import Notification
from appliance.actions.http_delivery import post
from appliance.actions.outbox import Outbox, OutboxWorker
from appliance.config.integrations import TelegramConfig
from appliance.errors import DeliveryRejectedError
from appliance.service.commands import Command
from appliance.service.log_redaction import register_secret

logger = logging.getLogger(__name__)

CAPTION_LIMIT = 1024  # Telegram's limit for a photo caption, in characters


def telegram_caption(notification: Notification) -> str:
    lines = [notification.title, notification.description]
    data = notification.fields
    if "score" in data:
        lines.append(f"Score {float(data['score']):.2f}, state {data.get('state', '?')}")
    if data.get("cloud_verdict") is not None:
        lines.append(f"Cloud verdict: {data['cloud_verdict']}")
    if "id" in data:
        lines.append(f"Alert {data['id']} #{data.get('repeat', 0)}")
    text = "\n".join(lines)
    return text if len(text) <= CAPTION_LIMIT else text[: CAPTION_LIMIT - 1] + "…"


def _video(notification: Notification) -> Path | None:
    """The MP4 a timelapse message names, if it is still on disk (else the message goes as text)."""
    path = notification.fields.get("video")
    if isinstance(path, str) and Path(path).is_file():
        return Path(path)
    return None


class TelegramNotifier:
    """A :class:`~appliance.actions.dispatcher.Notifier` sending to one chat (and topic)."""

    name = "telegram"

    def __init__(self, config: TelegramConfig, outbox_dir: Path, session: requests.Session | None = None):
        if config.bot_token is None or not config.chat_id:
            raise ValueError("Telegram is not configured (notify.telegram.bot_token and chat_id)")
        self.config = config
        token = config.bot_token.get_secret_value()
        register_secret(token)
        self._base = f"{config.api_url}/bot{token}"
        self._session = session or requests.Session()
        self.worker = OutboxWorker(
            self.name, Outbox(outbox_dir), self.deliver,
            config.retry_backoff_s, config.retry_backoff_max_s, config.max_age_s,
        )  # fmt: skip

    def deliver(self, notification: Notification) -> None:
        data: dict[str, Any] = {"chat_id": self.config.chat_id}
        if self.config.message_thread_id is not None:
            data["message_thread_id"] = str(self.config.message_thread_id)
        caption = telegram_caption(notification)
        video = _video(notification)
        if video is not None:  # a job's timelapse (appliance.history): sendVideo
            data["caption"] = caption
            data["supports_streaming"] = "true"
            files = {"video": (video.name, video.read_bytes(), "video/mp4")}
            response = post(self._session, f"{self._base}/sendVideo", self.name, self.config.timeout_s,
                            data=data, files=files)  # fmt: skip
        elif notification.image is not None:
            data["caption"] = caption
            files = {"photo": ("evidence.jpg", notification.image, "image/jpeg")}
            response = post(self._session, f"{self._base}/sendPhoto", self.name, self.config.timeout_s,
                            data=data, files=files)  # fmt: skip
        else:
            data["text"] = caption
            response = post(self._session, f"{self._base}/sendMessage", self.name, self.config.timeout_s,
                            data=data)  # fmt: skip
        try:
            ok = bool(response.json().get("ok"))
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise DeliveryRejectedError(f"telegram: HTTP {response.status_code} without ok=true")

    def publish(self, notification: Notification) -> None:
        if self.worker.outbox.put(notification):
            self.worker.wake()

    def subscribe(self, handler: Callable[[Command], None]) -> None:
        """Commands from Telegram (getUpdates) are not read: nothing to subscribe to."""

    def start(self) -> None:
        thread = f", topic {self.config.message_thread_id}" if self.config.message_thread_id else ""
        logger.info("Telegram alerts on (chat %s%s)", self.config.chat_id, thread)
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self._session.close()
