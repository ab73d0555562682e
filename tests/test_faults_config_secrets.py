"""Fault suite, issue 33 item 4 (and issue 34's camera names and typo hints): no configuration error prints
a credential.

``layerwatch check-config`` and ``layerwatch run`` (both exit 78) are run as real processes on invalid
configurations whose credentials come from each place the loader reads: the TOML file (an MQTT URL with
``user:pass@`` and a bad port, an RTSP URL with credentials, a snapshot URL with ``pwd=``), the
environment (``MQTT_BROKER_URL``, ``RTSP_URL``) and systemd credentials (``rtsp_url``,
``mqtt_password``). Every byte of stdout and stderr is searched for every secret the test set; the key
paths must still be named, and masked URLs shown as ``***``. Nothing listens anywhere: every address is
127.0.0.1 and the processes exit before opening anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config.loader import EX_CONFIG

SECRETS = ("MqttUs3r", "MqttS3cretPw", "RtspUs3r", "RtspS3cretPw", "Sn4pUs3r", "Sn4pS3cretPw", "EnvMqttPw9",
           "EnvRtspPw9", "CredRtspPw7", "CredMqttPw7")  # fmt: skip

FILE = """
[service]
state_dir = "{state}"
[[cameras]]
name = "prusa"
source = { type = "rtsp", url = "rtsp:/RtspUs3r:RtspS3cretPw@127.0.0.1:554/stream1", transprot = "tcp" }
[[cameras]]
name = "snap"
source = { type = "http", url = "ftp://127.0.0.1/snap.cgi?usr=Sn4pUs3r&pwd=Sn4pS3cretPw", widht = 3 }
[mqtt]
broker_url = "mqtt://MqttUs3r:MqttS3cretPw@127.0.0.1:99999"
"""


def run(command: str, config: Path, env: dict[str, str]) -> tuple[int, str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GPIOZERO_PIN_FACTORY": "mock"}
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", command, "--config", str(config)],
        capture_output=True, text=True, env={**base, **env}, timeout=120,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def variants(tmp_path: Path) -> dict[str, tuple[Path, dict[str, str]]]:
    state = tmp_path / "state"
    config = tmp_path / "layerwatch.toml"
    config.write_text(FILE.replace("{state}", str(state)))
    bare = tmp_path / "bare.toml"  # only a camera: everything else from the environment or credentials
    bare.write_text(f'[service]\nstate_dir = "{state}"\n[[cameras]]\nname = "prusa"\n')
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "rtsp_url").write_text("rtsp:/CredUser:CredRtspPw7@127.0.0.1/live\n")
    (creds / "mqtt_password").write_text("CredMqttPw7\n")
    env_urls = {
        "MQTT_BROKER_URL": "mqtt://EnvUser:EnvMqttPw9@127.0.0.1:70000",
        "RTSP_URL": "rtsps:EnvUser:EnvRtspPw9@127.0.0.1/x",
    }
    return {
        "file": (config, {}),
        "environment": (bare, env_urls),
        "environment, early error": (bare, {**env_urls, "TEST_MODE": "maybe"}),
        "credentials": (bare, {"CREDENTIALS_DIRECTORY": str(creds), "MQTT_BROKER_URL": "127.0.0.1:99999"}),
    }


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_no_error_path_prints_a_credential(tmp_path: Path, command: str) -> None:
    outputs = {}
    for name, (config, env) in variants(tmp_path).items():
        code, output = run(command, config, env)
        assert code == EX_CONFIG, (name, output)
        outputs[name] = output
        leaked = [s for s in (*SECRETS, "EnvUser", "CredUser") if s in output]
        assert not leaked, f"{command} with the {name} configuration printed {leaked}:\n{output}"
        assert "***" in output or name == "environment, early error", (name, output)
    file_output = outputs["file"]
    for key in ("cameras.0.source.url", "cameras.1.source.url", "mqtt.broker_url"):
        assert key in file_output, file_output
    assert "mqtt://***@127.0.0.1:99999" in file_output
    assert "pwd=***" in file_output
    # issue 34: cameras named by their name, the nearest key suggested for a typo
    assert "cameras.1.source.widht: unknown key; did you mean width? (camera 'snap')" in file_output
    assert "cameras.0.source.transprot: unknown key; did you mean transport? (camera 'prusa')" in file_output
    assert "(from credential rtsp_url)" in outputs["credentials"]
    assert "env TEST_MODE" in outputs["environment, early error"]
    assert not (tmp_path / "state").exists()  # nothing was started
