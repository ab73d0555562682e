"""In the service the web stack starts after READY (``ServiceContext.ready``): its imports would hold the
GIL while the first frame is analysed. The socket is bound at once, so a browser waits instead of being
refused; outside the service (no ``ready`` event) it serves at once; a stop while it waits is prompt."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from appliance.api.sink import ApiSink
from appliance.config.model import LayerwatchConfig
from appliance.service.commands import CommandQueue
from appliance.service.wiring import ServiceContext


def _sink(tmp_path: Path, ready: threading.Event | None) -> ApiSink:
    config = LayerwatchConfig.model_validate({
        "cameras": [{"name": "printer", "source": {"type": "replay", "path": str(tmp_path)}}],
        "service": {"state_dir": str(tmp_path / "state")}, "api": {"listen": "127.0.0.1:0"},
    })  # fmt: skip
    context = ServiceContext(CommandQueue(), lambda _: {}, ["printer"], tmp_path / "state", ready=ready)
    return ApiSink(config, context)


def _status(port: int, timeout: float) -> int:
    return requests.get(f"http://127.0.0.1:{port}/api/", timeout=timeout).status_code


def test_the_console_is_served_once_the_service_is_ready(tmp_path: Path):
    ready = threading.Event()
    sink = _sink(tmp_path, ready)
    sink.start()
    try:
        port = sink.server.bound_port
        assert port
        try:
            _status(port, timeout=1.0)
            raise AssertionError("served before READY")
        except requests.exceptions.ReadTimeout:
            pass  # connected (the socket listens) but not answered yet
        assert sink.server.server is None  # nothing of the web stack built yet
        ready.set()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _status(port, timeout=5.0) == 200
                break
            except requests.exceptions.RequestException:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        sink.stop()


def test_outside_the_service_it_serves_at_once_and_a_stop_while_waiting_is_prompt(tmp_path: Path):
    sink = _sink(tmp_path, None)
    sink.start()
    try:
        deadline = time.monotonic() + 30
        while sink.server.server is None or not sink.server.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _status(sink.server.bound_port, timeout=5.0) == 200
    finally:
        sink.stop()
    waiting = _sink(tmp_path / "second", threading.Event())
    waiting.start()
    started = time.monotonic()
    waiting.stop()
    assert time.monotonic() - started < 1.5
    assert not waiting.server.thread.is_alive()
