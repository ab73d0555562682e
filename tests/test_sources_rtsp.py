"""The RTSP source against a real GStreamer RTSP server on 127.0.0.1 (``tests/rtsp_server.py``).

The server plays a 10 frames/s test clip in real time. Timeouts are shortened so that a dead or
frozen server shows within a couple of seconds.
"""

from __future__ import annotations

import itertools
import logging
import time

import pytest

from appliance.config.sources import RtspSourceConfig
from appliance.errors import SourceError, SourceFrozenError, SourceUnavailableError
from appliance.sources import build_source
from appliance.sources.base import Frame, SourceState
from appliance.sources.rtsp import RtspSource, ffmpeg_capture_options
from tests.source_fixtures import RtspTestServer, free_port

FAST = {
    "open_timeout_s": 2.0,
    "read_timeout_s": 0.5,
    "frozen_after_s": 1.5,
    "reconnect_min_s": 0.2,
    "reconnect_max_s": 1.0,
}


def rtsp_source(url: str, **overrides: float) -> RtspSource:
    source = build_source("printer", RtspSourceConfig(url=url, **{**FAST, **overrides}))
    assert isinstance(source, RtspSource)
    return source


def read_within(source: RtspSource, seconds: float) -> Frame:
    """The first frame that arrives within ``seconds``, riding out errors while it reconnects."""
    deadline = time.monotonic() + seconds
    error: SourceError | None = None
    while time.monotonic() < deadline:
        try:
            return source.read(timeout_s=min(1.0, max(0.05, deadline - time.monotonic())))
        except SourceError as exc:
            error = exc
            time.sleep(0.05)
    raise AssertionError(f"no frame within {seconds} s; last error: {error}")


@pytest.mark.rtsp
def test_frames_arrive_and_are_always_new(rtsp_server: RtspTestServer) -> None:
    with rtsp_source(rtsp_server.url) as source:
        first = read_within(source, 5)
        assert first.image.shape == (240, 320, 3)
        assert first.image.dtype.name == "uint8"
        sequences = [first.sequence] + [source.read(timeout_s=2).sequence for _ in range(5)]
        assert sequences == sorted(set(sequences)), "read() returned a frame twice"
        assert source.status.state == SourceState.ONLINE
        assert source.status.frames >= 6
        assert source.status.last_frame_at is not None


@pytest.mark.rtsp
def test_slow_consumer_gets_the_latest_frame_not_a_backlog(rtsp_server: RtspTestServer) -> None:
    with rtsp_source(rtsp_server.url) as source:
        before = read_within(source, 5)
        dropped_before = source.status.dropped
        time.sleep(1.5)  # a slow detector: 15 frames go by at 10 frames/s
        frame = source.read(timeout_s=2)
        age_s = time.time() - frame.timestamp
        assert age_s < 0.35, f"frame is {age_s:.2f} s old: a buffered frame, not the latest"
        assert frame.sequence - before.sequence >= 10, "the grabber fell behind the stream"
        assert source.status.dropped - dropped_before >= 10, "skipped frames must be counted as dropped"
        follow = source.read(timeout_s=2)
        assert follow.sequence > frame.sequence
        assert follow.timestamp >= frame.timestamp


@pytest.mark.rtsp
def test_server_killed_and_restarted_frames_return_within_10_s(rtsp_server: RtspTestServer) -> None:
    with rtsp_source(rtsp_server.url) as source:
        read_within(source, 5)
        rtsp_server.kill()
        with pytest.raises(SourceError):  # offline (connection lost) or frozen, depending on timing
            for _ in range(50):
                source.read(timeout_s=0.5)
        deadline = time.monotonic() + 5
        while source.status.state != SourceState.OFFLINE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert source.status.state == SourceState.OFFLINE
        assert source.status.last_error
        restarted = time.monotonic()
        rtsp_server.start()
        frame = read_within(source, 10)
        assert time.monotonic() - restarted < 10
        assert time.time() - frame.timestamp < 1.0
        assert source.status.reconnects >= 1
        assert source.status.state == SourceState.ONLINE


@pytest.mark.rtsp
def test_frozen_stream_is_detected_and_recovers(rtsp_server: RtspTestServer) -> None:
    with rtsp_source(rtsp_server.url) as source:
        read_within(source, 5)
        rtsp_server.freeze()
        frozen_at = time.monotonic()
        with pytest.raises(SourceFrozenError, match="no new frame"):
            for _ in range(100):  # drain the frames already on their way
                source.read()
        assert time.monotonic() - frozen_at < FAST["frozen_after_s"] + 2.0
        assert source.status.state in (SourceState.FROZEN, SourceState.OFFLINE)
        assert "frozen" in (source.status.last_error or "") or source.status.state == SourceState.OFFLINE
        rtsp_server.thaw()
        frame = read_within(source, 10)
        assert time.time() - frame.timestamp < 1.0
        assert source.status.reconnects >= 1


@pytest.mark.rtsp
def test_wrong_path_error_never_shows_the_credentials(
    rtsp_server: RtspTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"rtsp://admin:hunter2secret@127.0.0.1:{rtsp_server.port}/no-such-stream"
    caplog.set_level(logging.DEBUG)
    with rtsp_source(url) as source, pytest.raises(SourceUnavailableError) as info:
        read_within_error(source, 5)
    message = str(info.value)
    assert "refused the stream" in message
    assert "hunter2secret" not in message and "admin" not in message
    assert "rtsp://***@127.0.0.1" in message
    assert "hunter2secret" not in caplog.text


def read_within_error(source: RtspSource, seconds: float) -> None:
    """Read until the source reports a definite error (not just 'still connecting')."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            source.read(timeout_s=0.5)
        except SourceUnavailableError as exc:
            if "still connecting" not in str(exc):
                raise
    raise AssertionError("no error reported")


def test_nothing_listening_gives_a_clear_error_fast(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    started = time.monotonic()
    with rtsp_source(f"rtsp://user:pa55word@127.0.0.1:{port}/test") as source:
        with pytest.raises(SourceUnavailableError, match=r"nothing is listening on 127\.0\.0\.1:\d+"):
            source.read(timeout_s=3)
        assert time.monotonic() - started < 2.5
        assert source.status.state == SourceState.OFFLINE
        assert "pa55word" not in str(source.status.last_error)
    assert "pa55word" not in caplog.text
    assert source.status.state == SourceState.CLOSED


def test_unresolvable_host_is_reported() -> None:
    source = rtsp_source("rtsp://camera.invalid/stream")
    with source, pytest.raises(SourceUnavailableError, match="cannot resolve host"):
        source.read(timeout_s=5)


def test_reconnect_backoff_doubles_and_is_bounded() -> None:
    source = rtsp_source(f"rtsp://127.0.0.1:{free_port()}/test", reconnect_min_s=0.1, reconnect_max_s=0.4)
    attempts: list[float] = []
    probe = source._probe_server

    def recording_probe() -> None:
        attempts.append(time.monotonic())
        probe()

    source._probe_server = recording_probe  # type: ignore[method-assign]
    with source:
        time.sleep(2.0)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(gaps) >= 4, gaps
    assert gaps[0] == pytest.approx(0.1, abs=0.08)
    assert gaps[1] == pytest.approx(0.2, abs=0.08)
    assert all(gap < 0.4 + 0.1 for gap in gaps), f"backoff exceeded reconnect_max_s: {gaps}"
    assert gaps[-1] == pytest.approx(0.4, abs=0.1)
    assert source.status.reconnects == len(attempts) - 1


def test_close_is_idempotent_and_quick() -> None:
    source = rtsp_source(f"rtsp://127.0.0.1:{free_port()}/test")
    source.open()
    started = time.monotonic()
    source.close()
    source.close()
    assert time.monotonic() - started < 1.5
    assert source.status.state == SourceState.CLOSED
    with pytest.raises(SourceError):
        source.read(timeout_s=0.1)


def test_capture_options_follow_the_transport() -> None:
    assert ffmpeg_capture_options("tcp") == "rtsp_transport;tcp|analyzeduration;0|probesize;32"
    assert ffmpeg_capture_options("udp").startswith("rtsp_transport;udp|")


@pytest.mark.rtsp
def test_reopen_after_close(rtsp_server: RtspTestServer) -> None:
    source = rtsp_source(rtsp_server.url)
    with source:
        first = read_within(source, 5)
    assert source.status.state == SourceState.CLOSED
    with source:
        again = read_within(source, 5)
    assert again.sequence > first.sequence
