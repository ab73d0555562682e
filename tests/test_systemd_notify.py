"""sd_notify: messages reach the socket, never block the caller, STATUS is rate-limited."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from appliance.service.systemd_notify import SystemdNotifier


def test_outside_systemd_everything_is_a_no_op():
    notifier = SystemdNotifier(environ={})
    assert not notifier.active
    notifier.ready("x")
    notifier.watchdog()
    notifier.status("y")


def test_messages_and_watchdog_interval(tmp_path: Path):
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
        assert notifier.watchdog_interval_s == 1.0
        notifier.ready("up")
        assert sock.recv(100) == b"READY=1\nSTATUS=up"
        notifier.watchdog(now=100.0)
        notifier.watchdog(now=100.5)  # too soon: not sent
        notifier.watchdog(now=101.0)
        notifier.status("a", now=200.0)
        notifier.status("b", now=200.5)  # rate-limited
        notifier.status("c", now=201.5)
        sock.settimeout(0.2)
        got = []
        try:
            while True:
                got.append(sock.recv(100))
        except TimeoutError:
            pass
        assert got == [b"WATCHDOG=1", b"WATCHDOG=1", b"STATUS=a", b"STATUS=c"]


def test_watchdog_for_another_pid_is_ignored():
    notifier = SystemdNotifier(
        environ={"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    )
    assert notifier.watchdog_interval_s == 0.0


def test_a_reader_that_stops_reading_never_blocks_the_sender(tmp_path: Path):
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": str(path)})
        start = time.monotonic()
        for i in range(5000):
            notifier.notify(f"STATUS={i}")
        assert time.monotonic() - start < 5.0
        assert notifier.dropped > 0
