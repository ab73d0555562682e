"""The on-disk outbox: an alert is never lost to a broker outage, a network outage or a restart.

Each channel has a folder ``<state_dir>/outbox/<channel>/``. :meth:`Outbox.put` writes one
notification as ``<ns>-<key>.json`` (plus ``<ns>-<key>.jpg`` for the evidence image) with write,
fsync and rename, so a file that exists is complete, even after SIGKILL or power loss.
:class:`OutboxWorker` delivers the oldest file on its own thread and deletes it only once the peer
confirmed it (HTTP 2xx, MQTT PUBACK); after a restart the worker simply starts with what is left.

Delivery is at-least-once with the window for a duplicate reduced to the moment between the
peer's confirmation and the ``unlink``: a peer that answered 429, 5xx or not at all did not
accept the message, so retrying it cannot post it twice. Failed attempts wait ``retry_after`` when
the peer said so, else ``backoff_s`` doubling up to ``backoff_max_s``; a message the peer refuses
for good (other 4xx) moves to ``rejected/``; one older than ``max_age_s`` is dropped with a log line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance.actions.dispatcher import Notification
from appliance.errors import DeliveryError, DeliveryRejectedError
from appliance.state_files import atomic_write_bytes

logger = logging.getLogger(__name__)

IDLE_WAIT_S = 5.0  # longest sleep with an empty outbox (put() wakes the worker at once)
NOT_READY_WAIT_S = 0.5  # how often to look again while the channel is not ready (broker down)


def _check_types(notification: Notification) -> None:
    """Raise TypeError for an entry that parses but has the wrong types (issue 14: ``"created":
    "yesterday"`` killed the delivery thread, ``"fields": null`` blocked the queue forever)."""
    n = notification
    if not all(isinstance(v, str) for v in (n.key, n.kind, n.title, n.description, n.time)):
        raise TypeError("key, kind, title, description and time must be strings")
    if n.camera is not None and not isinstance(n.camera, str):
        raise TypeError("camera must be a string or null")
    if isinstance(n.created, bool) or not isinstance(n.created, int | float):
        raise TypeError(f"created must be a number of seconds, not {n.created!r}")
    if not isinstance(n.fields, dict):
        raise TypeError(f"fields must be an object, not {n.fields!r}")


class Outbox:
    """Notifications waiting for one channel, oldest first."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def put(self, notification: Notification) -> bool:
        """Store ``notification``; False if one with the same key is already waiting."""
        with self._lock:
            if any(self.folder.glob(f"*-{notification.key}.json")):
                return False
            stem = f"{time.time_ns():020d}-{notification.key}"
            if notification.image is not None:
                atomic_write_bytes(self.folder / f"{stem}.jpg", notification.image)
            atomic_write_bytes(self.folder / f"{stem}.json", json.dumps(notification.to_json()).encode())
            return True

    def pending(self) -> list[Path]:
        """Oldest first, except that job messages (``-job-`` keys) wait behind every alert."""
        found = (p for p in self.folder.glob("*.json") if not p.name.startswith("."))
        return sorted(found, key=lambda p: ("-job-" in p.name, p.name))

    def load(self, path: Path) -> Notification | None:
        """The notification in ``path``; None (and the file set aside) if it cannot be read."""
        try:
            data = json.loads(path.read_text())
            image_path = path.with_suffix(".jpg")
            image = image_path.read_bytes() if image_path.exists() else None
            notification = Notification.from_json(data, image)
            _check_types(notification)
            return notification
        except (OSError, ValueError, TypeError) as exc:
            logger.error("outbox %s: unreadable %s (%s): set aside", self.folder.name, path.name, exc)
            self.set_aside(path)
            return None

    def remove(self, path: Path) -> None:
        path.with_suffix(".jpg").unlink(missing_ok=True)
        path.unlink(missing_ok=True)

    def set_aside(self, path: Path) -> None:
        rejected = self.folder / "rejected"
        rejected.mkdir(exist_ok=True)
        for part in (path, path.with_suffix(".jpg")):
            if part.exists():
                os.replace(part, rejected / part.name)


class OutboxWorker:
    """Delivers one outbox on its own thread, in order, until it is empty (and waits for more)."""

    def __init__(
        self,
        name: str,
        outbox: Outbox,
        deliver: Callable[[Notification], None],
        backoff_s: float = 2.0,
        backoff_max_s: float = 300.0,
        max_age_s: float = 86400.0,
        ready: Callable[[], bool] = lambda: True,
    ):
        self.name = name
        self.outbox = outbox
        self.deliver = deliver
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_age_s = max_age_s
        self.ready = ready
        self.delivered = 0  # counters, for tests and telemetry
        self.failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        waiting = len(self.outbox.pending())
        if waiting:
            logger.info("%s: %d message(s) waiting in the outbox from before", self.name, waiting)
        self._thread = threading.Thread(target=self._run, name=f"outbox-{self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 0.5) -> None:
        """Stop after the current attempt (waits at most ``timeout_s``; what is left stays on disk)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        self._wake.wait(seconds)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            pending = self.outbox.pending()
            if not pending:
                self._sleep(IDLE_WAIT_S)
                continue
            if not self.ready():
                self._stop.wait(NOT_READY_WAIT_S)
                continue
            path = pending[0]
            notification = self.outbox.load(path)
            if notification is None:
                continue
            age = time.time() - notification.created
            if age > self.max_age_s:
                logger.error("%s: %s undelivered for %.0f s: dropped", self.name, notification.key, age)
                self.outbox.remove(path)
                continue
            attempt += 1
            wait = self._attempt(path, notification, attempt)
            if wait is None:
                attempt = 0
            elif not self._stop.is_set():
                self._stop.wait(wait)

    def _attempt(self, path: Path, notification: Notification, attempt: int) -> float | None:
        """Try once; None when done with the file, else seconds to wait before the next try."""
        try:
            self.deliver(notification)
        except DeliveryRejectedError as exc:
            logger.error("%s: %s rejected for good: %s (kept in rejected/)", self.name, notification.key, exc)
            self.outbox.set_aside(path)
            return None
        except Exception as exc:  # DeliveryError and anything unexpected: retry with backoff
            self.failures += 1
            backoff = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
            peer_wait = exc.retry_after_s if isinstance(exc, DeliveryError) else None
            wait = peer_wait if peer_wait is not None else backoff
            level = logging.WARNING if attempt <= 3 or attempt % 10 == 0 else logging.DEBUG
            logger.log(level, "%s: %s attempt %d failed: %s; retry in %.1f s",
                       self.name, notification.key, attempt, exc, wait)  # fmt: skip
            return wait
        self.outbox.remove(path)
        self.delivered += 1
        logger.info("%s: %s %s delivered (attempt %d)", self.name, notification.kind, notification.key,
                    attempt)  # fmt: skip
        return None
