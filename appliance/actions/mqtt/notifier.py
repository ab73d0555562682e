"""MQTT as a :class:`~appliance.actions.dispatcher.Notifier`: alert events out, commands in.

Out: each alert goes through the outbox ``<state_dir>/outbox/mqtt``. Delivering it publishes the
evidence JPEG, retained, on ``P/<camera>/snapshot`` and then the event JSON on ``P/<camera>/event``
(``type``, ``id``, ``repeat``, ``time``, ``camera``, ``score``, ``state``, ``votes``, ``window``,
``description``, ``cloud_verdict``), both QoS 1 (a test alarm for all cameras has no camera: its
event goes to the device topic ``P/event``); the file is removed once the broker acknowledged
both. While the broker is away the worker waits; a message paho already holds is never published
a second time by this process (paho re-sends it after the reconnect), so each alert reaches the
broker once. Receivers may also de-duplicate on ``id`` + ``repeat``.

In: ``.../set`` topics (see :mod:`.commands`). A valid command goes to the dispatcher's
handler; an invalid one is logged with its reason and answered on ``P/event`` with
``{"type": "command_rejected", "topic", "reason", "time"}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from appliance.actions.dispatcher import Notification, iso_now
from appliance.actions.mqtt.client import MqttPublisher, wait_published
from appliance.actions.mqtt.commands import command_topics, parse_command
from appliance.actions.outbox import Outbox, OutboxWorker
from appliance.config.integrations import MqttConfig
from appliance.errors import CommandRejectedError, DeliveryError
from appliance.service.commands import Command

logger = logging.getLogger(__name__)

PUBACK_TIMEOUT_S = 10.0  # how long one delivery attempt waits for the broker's acknowledgements


class MqttNotifier:
    name = "mqtt"

    def __init__(self, publisher: MqttPublisher, config: MqttConfig, cameras: list[str], outbox_dir: Path):
        self.publisher = publisher
        self.cameras = cameras
        self.device_event_topic = f"{publisher.base}/event"
        self._inflight: dict[str, list[mqtt.MQTTMessageInfo]] = {}
        self.worker = OutboxWorker(
            self.name, Outbox(outbox_dir), self.deliver,
            backoff_s=1.0, backoff_max_s=30.0, max_age_s=config.event_max_age_s,
            ready=publisher.connected.is_set,
        )  # fmt: skip

    # -- out ---------------------------------------------------------------------------------
    def event_payload(self, notification: Notification) -> dict[str, object]:
        return {
            "type": notification.kind,
            **notification.fields,
            "time": notification.time,
            "camera": notification.camera,
            "description": notification.description,
        }

    def deliver(self, notification: Notification) -> None:
        infos = self._inflight.get(notification.key)
        if infos is None:
            camera = notification.camera
            topic = self.publisher.camera_topic(camera, "event") if camera else self.device_event_topic
            infos = []
            if notification.image is not None and camera and notification.kind != "job":
                snapshot = self.publisher.camera_topic(camera, "snapshot")
                infos.append(self.publisher.publish(snapshot, notification.image, qos=1, retain=True))
            body = json.dumps(self.event_payload(notification), separators=(",", ":"))
            infos.append(self.publisher.publish(topic, body, qos=1))
            self._inflight[notification.key] = infos
        if not wait_published(infos, PUBACK_TIMEOUT_S):
            raise DeliveryError("mqtt: no PUBACK yet (paho re-sends after a reconnect)", retry_after_s=1.0)
        del self._inflight[notification.key]

    def publish(self, notification: Notification) -> None:
        if self.worker.outbox.put(notification):
            self.worker.wake()

    # -- in ----------------------------------------------------------------------------------
    def subscribe(self, handler: Callable[[Command], None]) -> None:
        def on_set(topic: str, payload: bytes) -> None:
            try:
                command = parse_command(self.publisher.base, topic, payload, self.cameras)
            except CommandRejectedError as exc:
                logger.warning("MQTT command on %s rejected: %s", topic, exc)
                self.publisher.publish_json(
                    self.device_event_topic,
                    {"type": "command_rejected", "topic": topic, "reason": str(exc), "time": iso_now()},
                    qos=1,
                )
                return
            logger.info("MQTT command %s (camera %s)", command.kind.value, command.camera or "all")
            handler(command)

        for topic in command_topics(self.publisher.base):
            self.publisher.subscribe(topic, on_set)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
