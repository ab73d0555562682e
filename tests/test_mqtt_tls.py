"""MQTT over TLS with a username and password from systemd credentials, against a real mosquitto:
the CA file is honoured, the password comes from $CREDENTIALS_DIRECTORY, a wrong password is refused."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.actions.mqtt.client import MqttPublisher
from appliance.config import load_config
from tests.mqtt_fixtures import MOSQUITTO, Broker, free_port

pytestmark = pytest.mark.mqtt

PASSWORD = "tls-broker-pass-123"


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Layerwatch test CA",
            "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.cnf", "-out", "server.crt")  # fmt: skip
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


@pytest.fixture
def tls_broker():
    if (
        not Path(MOSQUITTO).exists()
        or shutil.which("openssl") is None
        or shutil.which("mosquitto_passwd") is None
    ):
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
    # mosquitto drops root to its own user: its files must sit in a folder it can enter (not tmp_path)
    folder = Path(tempfile.mkdtemp(prefix="layerwatch-tls-"))
    folder.chmod(0o755)
    ca, cert, key = make_ca_and_server_cert(folder)
    for path in (cert, key):
        path.chmod(0o644)  # mosquitto drops root to its own user
    passwords = folder / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "layerwatch", PASSWORD], check=True)
    passwords.chmod(0o644)
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
        f"certfile {cert}\nkeyfile {key}\nlog_dest stderr\n"
    )
    broker = Broker(port, config)
    broker.start()
    yield broker, ca
    broker.stop()
    shutil.rmtree(folder, ignore_errors=True)


def tls_subscriber(port: int, ca: Path, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tls-sub-{time.time_ns()}")
    client.username_pw_set("layerwatch", PASSWORD)
    client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    return client, got


def config_for(tmp_path: Path, port: int, ca: Path, credentials: Path):
    path = tmp_path / "layerwatch.toml"
    path.write_text(
        f'[mqtt]\nbroker_url = "mqtts://127.0.0.1:{port}"\nusername = "layerwatch"\nca_file = "{ca}"\n'
        '[[cameras]]\nname = "printer"\nsource = { type = "replay", path = "." }\n'
    )
    return load_config(path, environ={"CREDENTIALS_DIRECTORY": str(credentials)})


def test_tls_with_password_from_credentials(tmp_path: Path, tls_broker):
    broker, ca = tls_broker
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "mqtt_password").write_text(PASSWORD + "\n")
    config = config_for(tmp_path, broker.port, ca, credentials)
    subscriber, got = tls_subscriber(broker.port, ca, "layerwatch/layerwatch/printer/state")
    publisher = MqttPublisher(config.mqtt)
    publisher.start()
    try:
        assert publisher.connected.wait(15), "no TLS connection to the broker"
        publisher.publish_state("printer", {"state": "watching"})
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got and json.loads(got[-1])["state"] == "watching"
    finally:
        publisher.stop()
        subscriber.loop_stop()
        subscriber.disconnect()


def test_wrong_password_is_refused(tmp_path: Path, tls_broker):
    broker, ca = tls_broker
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "mqtt_password").write_text("not-the-password\n")
    publisher = MqttPublisher(config_for(tmp_path, broker.port, ca, credentials).mqtt)
    publisher.start()
    try:
        assert not publisher.connected.wait(3)
    finally:
        publisher.stop()


def test_untrusted_ca_is_refused(tmp_path: Path, tls_broker):
    broker, _ = tls_broker
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _, _ = make_ca_and_server_cert(other)
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "mqtt_password").write_text(PASSWORD + "\n")
    publisher = MqttPublisher(config_for(tmp_path, broker.port, other_ca, credentials).mqtt)
    publisher.start()
    try:
        assert not publisher.connected.wait(3)
    finally:
        publisher.stop()
