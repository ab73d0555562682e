"""Run ``layerwatch`` as a real child process, with a NOTIFY_SOCKET the test listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket collecting ``KEY=value`` messages."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []

    def wait_for(self, needle: str, timeout: float = 30.0) -> float:
        """Wait until a message containing ``needle`` arrives; return its arrival time."""
        deadline = time.monotonic() + timeout
        for at, message in self.messages:
            if needle in message:
                return at
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536).decode()
            except TimeoutError:
                continue
            at = time.monotonic()
            self.messages.append((at, data))
            if needle in data:
                return at
        raise AssertionError(f"no {needle!r} within {timeout} s; got {[m for _, m in self.messages][-5:]}")

    def close(self) -> None:
        self.sock.close()


def write_config(tmp_path: Path, clip: Path, extra: str = "", rate_fps: float = 10, loop: bool = True,
                 interval: float = 0.1) -> Path:  # fmt: skip
    config = tmp_path / "layerwatch.toml"
    config.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\nanalysis_interval_s = {interval}\n'
        f'[[cameras]]\nname = "printer"\n[cameras.source]\ntype = "replay"\npath = "{clip}"\n'
        f"rate_fps = {rate_fps}\nloop = {'true' if loop else 'false'}\n" + extra
    )
    return config


def start_service(
    config: Path, env: dict[str, str] | None = None, *args: str, log: Path | None = None
) -> subprocess.Popen[str]:
    """``layerwatch run --config CONFIG``; with ``LAYERWATCH_CONFIG`` in ``env`` no --config is given.
    With ``log`` its stdout and stderr go to that file (a long or chatty run would fill a pipe)."""
    if env and "LAYERWATCH_CONFIG" in env:
        cmd = [sys.executable, "-m", "appliance", "run", *args]
    else:
        cmd = [sys.executable, "-m", "appliance", "run", "--config", str(config), *args]
    base = {k: v for k, v in os.environ.items() if k not in ("RTSP_URL", "MQTT_BROKER_URL", "TEST_MODE")}
    if log is not None:
        with log.open("w") as out:
            return subprocess.Popen(cmd, env={**base, **(env or {})}, stdout=out, stderr=out, text=True)
    return subprocess.Popen(
        cmd,
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
