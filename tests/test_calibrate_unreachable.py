"""`layerwatch calibrate` against a camera that cannot be reached gives up within 15 s with one line
naming the camera, its URL without credentials and the cause (no warning per retry)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


@pytest.mark.parametrize(
    ("server", "cause"),
    [(refused_port, "connection refused"), (silent_server, "sent no picture within the open timeout")],
    ids=["refused", "silent"],
)
def test_calibrate_gives_up_within_15_s_with_one_line(tmp_path: Path, server, cause: str) -> None:  # type: ignore[no-untyped-def]
    with server() as port:
        config = tmp_path / "layerwatch.toml"
        url = f"rtsp://admin:hunter2@127.0.0.1:{port}/stream1"
        config.write_text(
            f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[[cameras]]\nname = "prusa"\nsource = {{ type = "rtsp", url = "{url}" }}\n'
        )
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "appliance", "calibrate", "--config", str(config)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        took = time.monotonic() - started
    assert proc.returncode == 1
    assert took < 15.0, took
    [line] = proc.stderr.splitlines()  # one line, and nothing on stdout
    assert proc.stdout == ""
    assert "camera prusa" in line and f"rtsp://***@127.0.0.1:{port}/stream1" in line and cause in line, line
    assert "hunter2" not in line and "admin" not in line
    assert not (tmp_path / "state" / "cameras" / "prusa" / "calibration.npz").exists()


def test_calibrate_on_a_camera_that_delivers_saves_the_calibration(
    tmp_path: Path, synthetic_clip: Path
) -> None:
    """The camera is tried before the model loads; a camera that delivers is calibrated as before."""
    config = tmp_path / "layerwatch.toml"
    config.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\n[[cameras]]\nname = "prusa"\n'
        f'source = {{ type = "replay", path = "{synthetic_clip}", rate_fps = 20 }}\n'
        "calibration = { frames = 16, interval_s = 0.05 }\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "calibrate", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "state" / "cameras" / "prusa" / "calibration.npz").is_file()
    assert "calibration saved" in proc.stdout
