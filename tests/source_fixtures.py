"""Real peers for the frame-source tests: test clips, an RTSP server, an HTTP snapshot server.

``tests/conftest.py`` star-imports this module. Everything listens on 127.0.0.1 only.

- ``rtsp_clip`` / ``short_clip``: H.264 ``.mp4`` clips made once per session with Debian's
  ``ffmpeg`` from the ``testsrc`` pattern (320x240, 10 frames/s, a keyframe every second).
- ``rtsp_server``: ``tests/rtsp_server.py`` (GStreamer's RTSP server, run with ``/usr/bin/python3``)
  serving ``rtsp_clip`` at ``rtsp://127.0.0.1:PORT/test``; it can be killed, restarted on the same
  port, frozen and thawed. Skipped with the reason when the system Python cannot import ``gi``.
- ``snapshot_server``: an ``http.server`` in a thread that answers GETs with a JPEG, with optional
  basic or digest authentication and a script of failures (HTTP status, garbage body, delay).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

__all__ = [
    "RtspTestServer",
    "SnapshotServer",
    "free_port",
    "make_clip",
    "rtsp_clip",
    "rtsp_server",
    "short_clip",
    "snapshot_server",
]

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
CLIP_SIZE = (320, 240)
CLIP_FPS = 10


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_clip(path: Path, seconds: float, fps: int = CLIP_FPS, size: tuple[int, int] = CLIP_SIZE) -> Path:
    """Encode ``seconds`` of ffmpeg's ``testsrc`` pattern as H.264 (keyframe every second, no
    B-frames) into ``path``."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    # fmt: off
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size={size[0]}x{size[1]}:rate={fps}", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(fps), "-bf", "0",
         "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )
    # fmt: on
    return path


@pytest.fixture(scope="session")
def rtsp_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60 s clip, long enough that no RTSP test reaches its end."""
    return make_clip(tmp_path_factory.mktemp("clips") / "rtsp.mp4", seconds=60)


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s clip: exactly 20 frames."""
    return make_clip(tmp_path_factory.mktemp("clips") / "short.mp4", seconds=2)


@functools.cache
def gi_rtsp_missing() -> str | None:
    """Why the RTSP server cannot run here, or ``None`` when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    if result.returncode:
        return (
            f"{SYSTEM_PYTHON} cannot import GstRtspServer (apt-get install python3-gi "
            "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad): "
            + result.stderr.strip().splitlines()[-1]
        )
    return None


class RtspTestServer:
    """Controls one ``tests/rtsp_server.py`` process on a fixed port (kept across restarts)."""

    def __init__(self, clip: Path, log_dir: Path, port: int | None = None):
        self.clip = clip
        self.log_dir = log_dir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/test"

    def start(self, *, frozen: bool = False, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it listens (retrying while the port is still taken)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.starts += 1
            log = self.log_dir / f"rtsp-server-{self.starts}.log"
            cmd = [SYSTEM_PYTHON, str(RTSP_SERVER_SCRIPT), "--file", str(self.clip), "--port", str(self.port)]
            with log.open("wb") as out:
                self.process = subprocess.Popen(
                    [*cmd, *(["--frozen"] if frozen else [])], stdout=out, stderr=subprocess.STDOUT
                )
            while time.monotonic() < deadline and self.process.poll() is None:
                if "READY" in log.read_text(errors="replace"):
                    return
                time.sleep(0.05)
            if "READY" in log.read_text(errors="replace"):
                return
            self.kill()
            if time.monotonic() >= deadline:
                raise RuntimeError(f"RTSP server did not start in {timeout_s} s: {log.read_text()}")
            time.sleep(0.2)  # port still in use by the previous instance: try again

    def _signal(self, signum: int) -> None:
        assert self.process is not None and self.process.poll() is None, "RTSP server is not running"
        self.process.send_signal(signum)

    def freeze(self) -> None:
        """Stop sending frames on every stream while keeping the connections open."""
        self._signal(signal.SIGUSR1)

    def thaw(self) -> None:
        self._signal(signal.SIGUSR2)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crashed camera would die."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def rtsp_server(rtsp_clip: Path, tmp_path: Path) -> Iterator[RtspTestServer]:
    """A running RTSP server serving ``rtsp_clip`` at ``server.url``."""
    reason = gi_rtsp_missing()
    if reason:
        pytest.skip(reason)
    server = RtspTestServer(rtsp_clip, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- HTTP snapshot server ------------------------------------------------------------------------


@dataclass
class SnapshotServer:
    """State of the snapshot server. ``script`` is consumed one item per request, then every
    request gets the image: an ``int`` answers with that HTTP status, ``"garbage"`` with a body that
    is not an image, ``("sleep", seconds)`` waits before answering with the image."""

    port: int = 0
    auth: str = "none"  # none, basic or digest
    username: str = "viewer"
    password: str = "s3cret-pw"
    realm: str = "layerwatch-test"
    image: np.ndarray = field(default_factory=lambda: np.full((48, 64, 3), (10, 120, 230), np.uint8))
    script: list[object] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # path of every request, in order
    nonce: str = field(default_factory=lambda: secrets.token_hex(16))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/snapshot.jpg") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def authorized(self, header: str | None, method: str, uri: str) -> bool:
        if self.auth == "none":
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if self.auth == "basic":
            expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return scheme == "Basic" and value == expected
        if scheme != "Digest":
            return False
        params = dict(
            (key.strip(), raw.strip().strip('"'))
            for key, _, raw in (item.partition("=") for item in value.split(","))
        )
        if params.get("username") != self.username or params.get("nonce") != self.nonce:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.username}:{self.realm}:{self.password}")
        ha2 = md5(f"{method}:{params.get('uri', uri)}")
        expected = md5(
            f"{ha1}:{self.nonce}:{params.get('nc')}:{params.get('cnonce')}:{params.get('qop')}:{ha2}"
        )
        return params.get("response") == expected

    def challenge(self) -> str:
        if self.auth == "basic":
            return f'Basic realm="{self.realm}"'
        return f'Digest realm="{self.realm}", qop="auth", nonce="{self.nonce}", algorithm=MD5'


class _SnapshotHandler(BaseHTTPRequestHandler):
    server: _SnapshotHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.server.state
        if not state.authorized(self.headers.get("Authorization"), "GET", self.path):
            self._send(401, b"unauthorized", "text/plain", {"WWW-Authenticate": state.challenge()})
            return
        with state.lock:
            state.requests.append(self.path)
            step = state.script.pop(0) if state.script else None
        if isinstance(step, tuple) and step[0] == "sleep":
            time.sleep(float(step[1]))
        if isinstance(step, int):
            self._send(step, b"camera error", "text/plain")
        elif step == "garbage":
            self._send(200, b"\xff\xd8 this is not really a jpeg", "image/jpeg")
        else:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(200, cv2.imencode(".jpg", state.image)[1].tobytes(), "image/jpeg")


class _SnapshotHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: SnapshotServer):
        super().__init__(("127.0.0.1", 0), _SnapshotHandler)
        self.state = state
        state.port = int(self.server_address[1])


@pytest.fixture
def snapshot_server() -> Iterator[SnapshotServer]:
    """A running snapshot server; set ``auth``/``script`` on it before reading."""
    state = SnapshotServer()
    httpd = _SnapshotHTTPServer(state)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(2)
