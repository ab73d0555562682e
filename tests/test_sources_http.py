"""The HTTP snapshot source against a real ``http.server`` on 127.0.0.1 (``snapshot_server``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pytest

from appliance.config.sources import HttpSnapshotSourceConfig
from appliance.errors import SourceError, SourceUnavailableError
from appliance.sources import build_source
from appliance.sources.base import SourceState
from appliance.sources.http_snapshot import HttpSnapshotSource
from appliance.sources.redact import redact_text, redact_url, url_secrets
from tests.source_fixtures import SnapshotServer, free_port


def http_source(url: str, **fields: Any) -> HttpSnapshotSource:
    config = HttpSnapshotSourceConfig(url=url, **{"retry_delay_s": 0.05, "timeout_s": 2.0, **fields})
    source = build_source("printer", config)
    assert isinstance(source, HttpSnapshotSource)
    return source


def assert_is_snapshot(image: np.ndarray, server: SnapshotServer) -> None:
    assert image.shape == server.image.shape
    assert np.abs(image.astype(int) - server.image.astype(int)).max() < 12  # JPEG round trip


def test_plain_snapshot_frames_are_new_each_read(snapshot_server: SnapshotServer) -> None:
    with http_source(snapshot_server.url()) as source:
        first, second = source.read(), source.read()
    assert_is_snapshot(first.image, snapshot_server)
    assert second.sequence == first.sequence + 1
    assert second.timestamp >= first.timestamp
    assert source.status.frames == 2
    assert source.status.state == SourceState.CLOSED


@pytest.mark.parametrize("scheme", ["basic", "digest"])
def test_authentication(snapshot_server: SnapshotServer, scheme: str) -> None:
    snapshot_server.auth = scheme
    url = snapshot_server.url()
    with http_source(url, auth=scheme, username="viewer", password="s3cret-pw") as source:
        assert_is_snapshot(source.read().image, snapshot_server)
        assert source.status.state == SourceState.ONLINE
    assert snapshot_server.requests == ["/snapshot.jpg"]  # the server only records authorised requests


@pytest.mark.parametrize("scheme", ["basic", "digest"])
def test_wrong_password_is_not_retried_and_not_logged(
    snapshot_server: SnapshotServer, scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot_server.auth = scheme
    caplog.set_level(logging.DEBUG)
    source = http_source(
        snapshot_server.url(), auth=scheme, username="viewer", password="wrong-pw-123", retries=3
    )
    started = time.monotonic()
    with source, pytest.raises(SourceUnavailableError, match="HTTP 401") as info:
        source.read()
    assert time.monotonic() - started < 1.0, "a 401 must not be retried"
    assert "check username" in str(info.value)
    assert "wrong-pw-123" not in str(info.value)
    assert "wrong-pw-123" not in caplog.text
    assert source.status.state == SourceState.CLOSED
    assert "401" in (source.status.last_error or "")


def test_server_error_then_success_is_retried(snapshot_server: SnapshotServer) -> None:
    snapshot_server.script = [500, 503]
    with http_source(snapshot_server.url(), retries=2) as source:
        frame = source.read()
    assert_is_snapshot(frame.image, snapshot_server)
    assert len(snapshot_server.requests) == 3
    assert source.status.extra["retries"] == 2


def test_server_errors_beyond_the_retries_are_unavailable(snapshot_server: SnapshotServer) -> None:
    snapshot_server.script = [500, 500, 500]
    with http_source(snapshot_server.url(), retries=1) as source:
        with pytest.raises(SourceUnavailableError, match="HTTP 500"):
            source.read()
        assert source.status.state == SourceState.OFFLINE
        assert len(snapshot_server.requests) == 2
        assert_is_snapshot(source.read().image, snapshot_server)  # the camera came back
        assert source.status.state == SourceState.ONLINE


def test_garbage_body_is_a_source_error_not_a_crash(snapshot_server: SnapshotServer) -> None:
    snapshot_server.script = ["garbage"] * 3
    with http_source(snapshot_server.url(), retries=2) as source:
        with pytest.raises(SourceError, match="do not decode as an image"):
            source.read()
        assert len(snapshot_server.requests) == 3
        assert_is_snapshot(source.read().image, snapshot_server)


def test_timeout_is_honoured(snapshot_server: SnapshotServer) -> None:
    snapshot_server.script = [("sleep", 3.0)]
    started = time.monotonic()
    source = http_source(snapshot_server.url(), timeout_s=0.3, retries=0)
    with source, pytest.raises(SourceUnavailableError, match=r"no answer within 0\.3 s"):
        source.read()
    assert time.monotonic() - started < 1.5


def test_read_timeout_caps_the_whole_call_including_retries(snapshot_server: SnapshotServer) -> None:
    snapshot_server.script = [("sleep", 2.0)] * 4
    started = time.monotonic()
    with http_source(snapshot_server.url(), timeout_s=1.0, retries=3) as source, pytest.raises(SourceError):
        source.read(timeout_s=0.5)
    assert time.monotonic() - started < 1.5


def test_nothing_listening_and_secrets_in_the_query_stay_hidden(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2&usr=admin&pwd=t0psecret"
    caplog.set_level(logging.DEBUG)
    with http_source(url, retries=1) as source, pytest.raises(SourceUnavailableError) as info:
        source.read()
    message = str(info.value)
    assert "ConnectionError" in message
    assert "pwd=***" in message and "usr=***" in message
    assert "t0psecret" not in message and "t0psecret" not in caplog.text


def test_read_before_open_is_an_error(snapshot_server: SnapshotServer) -> None:
    source = http_source(snapshot_server.url())
    with pytest.raises(SourceError, match="before open"):
        source.read()
    source.close()
    source.close()


def test_redact_url() -> None:
    assert (
        redact_url("rtsp://admin:pw@cam.local:554/live?channel=1")
        == "rtsp://***@cam.local:554/live?channel=1"
    )
    assert redact_url("http://cam/snap.cgi?user=a&pwd=b&x=1") == "http://cam/snap.cgi?user=***&pwd=***&x=1"
    assert redact_url("rtsp://cam/stream") == "rtsp://cam/stream"
    secrets = url_secrets("rtsp://ad%40min:p%3Ass@cam/s?token=abc")
    assert {"p%3Ass", "p:ss", "abc"} <= set(secrets)
    assert redact_text("failed for p:ss and abc", secrets) == "failed for *** and ***"
