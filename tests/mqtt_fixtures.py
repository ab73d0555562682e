"""A real mosquitto broker on 127.0.0.1 for tests, and a small subscriber helper."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    port: int
    config: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    data = tmp_path / "mosquitto"
    data.mkdir()
    shutil.chown(data, user="mosquitto") if _has_user("mosquitto") else None
    config = tmp_path / "mosquitto.conf"
    # started as root, mosquitto switches to the user ``user`` names (default: mosquitto), which cannot
    # enter pytest's 0700 tmp_path: persistence then silently fails at shutdown ("Error saving
    # in-memory database ... Permission denied") and a restarted broker forgets every persistent
    # session, so a test of queued QoS 1 delivery passed only when the subscriber reconnected first.
    # Staying the user that started it keeps the sessions (the option is ignored when not root).
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {data}/\nlog_dest stderr\nuser {getpass.getuser()}\n"
    )
    broker = Broker(port, config)
    broker.start()
    yield broker
    broker.stop()


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@dataclass
class Subscriber:
    """Collects messages of the topics it subscribed to (retained ones included)."""

    port: int
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: list[tuple[str, float]] = field(default_factory=list)  # (topic, time.monotonic()) of each

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{time.time_ns()}")
        self.client.on_message = self._on_message
        self._acked: set[int] = set()
        self._acked_changed = threading.Condition()
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: object, props: object
    ) -> None:
        with self._acked_changed:
            self._acked.add(mid)
            self._acked_changed.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))
            self.arrived.append((message.topic, time.monotonic()))

    def arrivals(self, topic: str) -> list[float]:
        """When each message on ``topic`` arrived (``time.monotonic()``), oldest first."""
        with self.lock:
            return [at for t, at in self.arrived if t == topic]

    def subscribe(self, topic: str, timeout: float = 10.0) -> None:
        """Subscribe and return once the broker has acknowledged it (a message published after this call
        is delivered; a fixed sleep lost that race on a loaded machine)."""
        _, mid = self.client.subscribe(topic, qos=1)
        with self._acked_changed:
            if not self._acked_changed.wait_for(lambda: mid in self._acked, timeout):
                raise AssertionError(f"no SUBACK for {topic} within {timeout} s")

    def wait_for(self, topic: str, predicate=lambda payload: True, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for t, payload, _ in self.messages:
                    if t == topic and predicate(payload):
                        return payload
            time.sleep(0.05)
        with self.lock:
            seen = [(t, p[:80]) for t, p, _ in self.messages]
        raise AssertionError(f"no matching message on {topic} within {timeout} s; seen {seen[-10:]}")

    def json_on(self, topic: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def subscriber(mosquitto: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(mosquitto.port)
    yield sub
    sub.close()
