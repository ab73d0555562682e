"""MQTT: availability, per-camera state, alert events and the legacy status message (paho-mqtt v2).

Topics, with ``P = <prefix>/<device_id>``:

* ``P/available``: ``online`` / ``offline``, retained; ``offline`` is the last will, so a killed
  service shows as unavailable within the broker's keepalive handling (at once on a dropped TCP).
* ``P/<camera>/state``: retained JSON (state, score, decision, fps, camera status, last alert).
* ``P/<camera>/event``: one JSON message per alert (QoS 1).
* ``MQTT_TOPIC`` (``mqtt.status_topic``): the RTSP+Bedrock detector's
  ``{"timestamp", "print_failed", "description"}`` after each analysed frame, for compatibility.

Everything else (snapshot, telemetry, commands, Home Assistant discovery) is described in
:mod:`appliance.actions.mqtt.sink` and ``docs/integrations.md``.

paho's network thread reconnects by itself (1 s doubling to 60 s); publishing never blocks the
analysis loop. On every (re)connect the publisher says ``online``, re-subscribes its topics and runs
the hooks registered with :meth:`MqttPublisher.on_connected` (discovery, retained state). PUBACKs
are tracked by message id so the outbox knows when a QoS 1 event really reached the broker. A
password is only ever handed to paho, never logged.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from appliance.config.model import MqttConfig
from appliance.service.log_redaction import register_secret

logger = logging.getLogger(__name__)


class MqttPublisher:
    """One connection to the broker for the whole appliance."""

    def __init__(self, config: MqttConfig, client_id: str | None = None):
        if config.broker_url is None:
            raise ValueError("MQTT is not configured (mqtt.broker_url)")
        self.config = config
        self.base = f"{config.prefix}/{config.device_id}"
        self.availability_topic = f"{self.base}/available"
        url = urlsplit(config.broker_url)
        self._host = url.hostname or "localhost"
        tls = url.scheme in ("mqtts", "ssl")
        self._port = url.port or (8883 if tls else 1883)
        self.connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"layerwatch-{config.device_id}",
            clean_session=True,
        )
        username = config.username or url.username
        password = config.password.get_secret_value() if config.password else url.password
        if username:
            register_secret(password)
            self._client.username_pw_set(username, password)
        if tls:
            self._client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                certfile=str(config.client_cert) if config.client_cert else None,
                keyfile=str(config.client_key) if config.client_key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        self._client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=60)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._hooks: list[Callable[[], None]] = []
        self._subscriptions: dict[str, Callable[[str, bytes], None]] = {}

    def camera_topic(self, camera: str, leaf: str) -> str:
        return f"{self.base}/{camera}/{leaf}"

    def start(self) -> None:
        """Connect in the background; returns at once even if the broker is down."""
        logger.info("MQTT broker %s:%d, topics under %s", self._host, self._port, self.base)
        self._client.connect_async(self._host, self._port, keepalive=self.config.keepalive_s)
        self._client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.warning("MQTT connection refused: %s", reason)
            return
        logger.info("MQTT connected")
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        for topic in list(self._subscriptions):
            client.subscribe(topic, qos=1)
        for hook in list(self._hooks):
            try:
                hook()
            except Exception as exc:  # a hook's bug must not stop paho's network thread
                logger.error("MQTT on-connect hook failed: %s", exc, exc_info=True)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if reason.is_failure:
            logger.warning("MQTT disconnected (%s); reconnecting", reason)

    def on_connected(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` (on paho's thread) after every successful connect."""
        self._hooks.append(hook)

    def subscribe(self, topic: str, callback: Callable[[str, bytes], None]) -> None:
        """Deliver messages on ``topic`` (wildcards allowed) to ``callback(topic, payload)``."""

        def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                callback(message.topic, bytes(message.payload))
            except Exception as exc:  # never let one message kill paho's network thread
                logger.error("MQTT message on %s failed: %s", message.topic, exc, exc_info=True)

        self._subscriptions[topic] = callback
        self._client.message_callback_add(topic, on_message)
        if self.connected.is_set():
            self._client.subscribe(topic, qos=1)

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        """Queue a message (paho keeps QoS 1 messages across reconnects); see :func:`wait_published`."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def publish_json(self, topic: str, payload: dict[str, Any], qos: int = 0, retain: bool = False) -> None:
        self._client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=qos, retain=retain)

    def publish_state(self, camera: str, payload: dict[str, Any]) -> None:
        self.publish_json(self.camera_topic(camera, "state"), payload, qos=1, retain=True)

    def publish_event(self, camera: str, payload: dict[str, Any]) -> None:
        self.publish_json(self.camera_topic(camera, "event"), payload, qos=1)

    def publish_status(self, timestamp: str, print_failed: bool, description: str) -> None:
        """The RTSP+Bedrock detector's per-frame message on ``MQTT_TOPIC``."""
        if self.config.status_topic:
            self.publish_json(
                self.config.status_topic,
                {"timestamp": timestamp, "print_failed": print_failed, "description": description},
            )

    def stop(self) -> None:
        """Say ``offline`` (retained) and disconnect cleanly."""
        try:
            if self.connected.is_set():
                info = self._client.publish(self.availability_topic, "offline", qos=1, retain=True)
                info.wait_for_publish(timeout=1.0)
            self._client.disconnect()
        except (RuntimeError, ValueError) as exc:
            logger.debug("MQTT stop: %s", exc)
        finally:
            self._client.loop_stop()


def wait_published(infos: list[mqtt.MQTTMessageInfo], timeout_s: float) -> bool:
    """True once the broker acknowledged every QoS 1 message in ``infos``.

    Unlike ``MQTTMessageInfo.wait_for_publish`` this also works for a message queued while the
    connection was down (paho sends it after the reconnect, but its ``rc`` stays ``NO_CONN``).
    """
    deadline = time.monotonic() + timeout_s
    for info in infos:
        with info._condition:
            while not info._published:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                info._condition.wait(left)
    return True
