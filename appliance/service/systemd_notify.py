"""Talk to systemd: ``READY=1``, ``WATCHDOG=1``, ``STATUS=...``, ``STOPPING=1``.

The protocol is one datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET`` (a leading ``@`` names
an abstract socket). It is sent here with ``MSG_DONTWAIT`` rather than through libsystemd's
``sd_notify`` (systemd-python), because a blocking send stalls the analysis loop whenever the
reader falls behind; a message that cannot be queued is dropped and counted. ``STATUS=`` is sent at
most once per ``STATUS_MIN_INTERVAL_S``. Outside systemd (no ``NOTIFY_SOCKET``) every call is a
no-op.

The watchdog is fed from the analysis loop, not from a side thread, so a hung loop stops the
pings and systemd restarts the service after ``WatchdogSec=``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)


STATUS_MIN_INTERVAL_S = 1.0


def _socket_sender(address: str) -> Callable[[str], None]:
    target = "\0" + address[1:] if address.startswith("@") else address

    def send(message: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), socket.MSG_DONTWAIT, target)

    return send


class SystemdNotifier:
    """Sends state to systemd; ``watchdog_interval_s`` is half of ``WatchdogSec=`` (0 when off)."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET")
        self._send: Callable[[str], None] | None = None
        if address:
            self._send = _socket_sender(address)
        usec = environ.get("WATCHDOG_USEC")
        pid = environ.get("WATCHDOG_PID")
        watchdog_on = bool(usec) and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s = int(usec) / 2e6 if watchdog_on and usec else 0.0
        self._last_ping = 0.0
        self._last_status = ""
        self._last_status_at = -STATUS_MIN_INTERVAL_S
        self.dropped = 0

    @property
    def active(self) -> bool:
        return self._send is not None

    def notify(self, message: str) -> None:
        if self._send is None:
            return
        try:
            self._send(message)
        except BlockingIOError:
            self.dropped += 1
        except OSError as exc:
            logger.debug("sd_notify failed: %s", exc)

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str, now: float | None = None, force: bool = False) -> None:
        """Send ``STATUS=``: at most once per ``STATUS_MIN_INTERVAL_S`` unless ``force``."""
        now = time.monotonic() if now is None else now
        if force or (text != self._last_status and now - self._last_status_at >= STATUS_MIN_INTERVAL_S):
            self._last_status, self._last_status_at = text, now
            self.notify(f"STATUS={text}")

    def watchdog(self, now: float | None = None) -> None:
        """Ping the watchdog, at most every ``watchdog_interval_s`` seconds."""
        if not self.watchdog_interval_s:
            return
        now = time.monotonic() if now is None else now
        if now - self._last_ping >= self.watchdog_interval_s:
            self._last_ping = now
            self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
