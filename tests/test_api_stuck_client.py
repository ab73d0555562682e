"""A stuck HTTP client costs the analysis loop nothing: clients that open the MJPEG live view (and the
event stream) and never read leave the service's frame rate where it was (measured before and during,
with a generous bound for a shared machine)."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from tests.api_harness import TOKEN, api_service

pytestmark = pytest.mark.usefixtures("shipped_model")
WINDOW_S = 5.0


def _analysed(service) -> float:  # type: ignore[no-untyped-def]
    text = service.get("/metrics").text
    match = re.search(r'layerwatch_frames_analysed_total{camera="printer"} ([0-9.e+]+)', text)
    assert match, text[:500]
    return float(match.group(1))


def _rate(service) -> float:  # type: ignore[no-untyped-def]
    start_n, start_t = _analysed(service), time.monotonic()
    time.sleep(WINDOW_S)
    return (_analysed(service) - start_n) / (time.monotonic() - start_t)


def _stuck(port: int, path: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after a frame or two
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    return sock  # and never read


def test_stuck_mjpeg_clients_do_not_slow_the_analysis_loop(tmp_path: Path):
    with api_service(tmp_path, interval=0.0, api_extra="stream_max_fps = 30") as service:
        service.wait(lambda: _analysed(service) > 20, timeout=60, what="frames analysed")
        before = _rate(service)
        port = int(service.url.rsplit(":", 1)[1])
        stuck = [_stuck(port, "/api/cameras/printer/stream") for _ in range(4)]
        stuck.append(_stuck(port, "/api/events"))
        try:
            time.sleep(2.0)  # their socket buffers fill; the server's writes to them now wait
            during = _rate(service)
            status = Path(f"/proc/{service.proc.pid}/status").read_text()
            peak_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
            print(f"frames/s before {before:.1f}, during {during:.1f} with {len(stuck)} stuck clients; "
                  f"service peak RSS {peak_mb:.1f} MB")  # fmt: skip
            assert before > 2
            assert service.get("/api/").text == "OK"  # and the API still answers others
        finally:
            for sock in stuck:
                sock.close()
        if during < 0.5 * before:
            # was it the clients or the machine? (another test's load arriving in between also halves the
            # rate): the rate once they are gone; stuck clients that slowed the loop leave it high again
            after = _rate(service)
            print(f"frames/s after the stuck clients closed: {after:.1f}")
            assert during >= 0.5 * min(before, after), (before, during, after)
