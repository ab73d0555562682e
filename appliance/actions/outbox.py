"""The on-disk outbox: an alert is never lost to a broker outage, a network outage or a restart.

Each channel has a folder ``<state_dir>/outbox/<channel>/``. :meth:`Outbox.put` writes one
notification as ``<ns>-<key>.json`` (plus ``<ns>-<key>.jpg`` for the evidence image) with write,
fsync and rename, so a file that exists is complete, even after SIGKILL or power loss.
:class:`OutboxWorker` delivers the oldest file on its own thread and deletes it only once the peer
confirmed it (HTTP 2xx, MQTT PUBACK); after a restart the worker simply starts with what is left.

Delivery is at-least-once with the window for a duplicate reduced to the moment between the
peer's confirmation and the ``unlink``: a peer that answered 429, 5xx or not at all did not
accept the message, so retrying it cannot post it twice. A peer's ``retry_after`` (429) holds the whole
channel that long; any other transient failure backs off *that entry* (``backoff_s`` doubling up to
``backoff_max_s``) while the entries behind it go on, so no entry ever holds back the others (issue 33).
A message that can never be sent (the peer refuses it for good: other 4xx; or its content cannot be
encoded: :func:`~appliance.actions.outbox_checks.is_final`) moves to ``rejected/`` and is reported
through ``on_set_aside`` (a ``outbox_entry_set_aside`` device event, wired by the channels); one older
than ``max_age_s`` is dropped with a log line. What enters the outbox is checked first
(:func:`~appliance.actions.outbox_checks.check_notification`): :meth:`Outbox.put` raises ``ValueError``
or ``TypeError`` for a notification no channel could send.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance.actions.dispatcher import Notification
from appliance.actions.outbox_checks import check_notification, is_final
from appliance.errors import DeliveryError
from appliance.service.storage_health import StorageHealth
from appliance.state_files import atomic_write_bytes

logger = logging.getLogger(__name__)

IDLE_WAIT_S = 5.0  # longest sleep with an empty outbox (put() wakes the worker at once)
NOT_READY_WAIT_S = 0.5  # how often to look again while the channel is not ready (broker down)
FLUSH_RETRY_S = 2.0  # how often entries held in memory (disk full) are tried on disk again
CRASH_WAIT_S = 1.0  # pause before the delivery loop goes on after an unexpected error

#: a waiting entry: its file on disk, or the stem (``<ns>-<key>``) of one held in memory
Entry = Path | str


def _order(stem: str) -> tuple[bool, str]:
    """Delivery order: alerts and test alarms oldest first, then job messages of appliance.history
    (``<ns>-job-<id>``), so a queue of progress messages or a large timelapse never delays an alert."""
    return ("-job-" in stem, stem)


class Outbox:
    """Notifications waiting for one channel, oldest first.

    When a notification cannot be written (ENOSPC or any other ``OSError``: issue 14, defect 3) it is
    held in memory instead, delivered by the same worker in the same order, and the failure is reported
    to ``storage`` (MQTT state, status light, systemd status). No partial file is left (each write is
    atomic and the image of an entry whose JSON failed is removed). The worker calls
    :meth:`flush_memory` every ``FLUSH_RETRY_S``: once the disk takes the held entries again they move
    back to disk (or, with all of them delivered meanwhile, a probe write succeeds) and the problem is
    cleared. An entry is in memory or on disk, never both, so it is
    delivered once; only a restart while the disk is still full loses what memory held (logged).
    """

    def __init__(self, folder: Path, storage: StorageHealth | None = None):
        self.folder = folder
        self.storage = storage
        self._memory: dict[str, Notification] = {}  # stem -> notification the disk would not take
        #: called with (entry name, reason) for every entry set aside (the channel emits a device event)
        self.on_set_aside: Callable[[str, str], None] | None = None
        self._disk_failed = False
        self._lock = threading.Lock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a full disk at start: entries go to memory until it has room
            logger.error("outbox %s: cannot create %s: %s", folder.name, folder, exc)

    @property
    def what(self) -> str:
        return f"outbox {self.folder.name}"

    def put(self, notification: Notification) -> bool:
        """Store ``notification``; False if one with the same key is already waiting. Raises TypeError or
        ValueError for a notification that no channel could send (nothing is stored)."""
        check_notification(notification)
        with self._lock:
            key = notification.key
            if any(s.endswith(f"-{key}") for s in self._memory) or any(self.folder.glob(f"*-{key}.json")):
                return False
            stem = f"{time.time_ns():020d}-{key}"
            if self._memory:  # keep the order: nothing goes to disk ahead of what memory holds
                self._memory[stem] = notification
                return True
            try:
                self._write(stem, notification)
            except OSError as exc:
                self._disk_failed = True
                self._memory[stem] = notification
                logger.error("outbox %s: cannot queue %s on disk (%s): held in memory, delivered from there",
                             self.folder.name, key, exc)  # fmt: skip
                if self.storage is not None:
                    self.storage.failed(self.what, exc)
            return True

    def _write(self, stem: str, notification: Notification) -> None:
        image = self.folder / f"{stem}.jpg"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if notification.image is not None:
                atomic_write_bytes(image, notification.image)
            atomic_write_bytes(self.folder / f"{stem}.json", json.dumps(notification.to_json()).encode())
        except OSError:
            with contextlib.suppress(OSError):
                image.unlink(missing_ok=True)
            raise

    @property
    def held_in_memory(self) -> int:
        return len(self._memory)

    @property
    def disk_failed(self) -> bool:
        """The last write failed and none has succeeded since (the worker keeps trying)."""
        return self._disk_failed

    def flush_memory(self) -> int:
        """Move the entries held in memory to disk, oldest first; returns how many are still held. With
        none held (all delivered from memory meanwhile) a small probe file tells whether the disk has room."""
        with self._lock:
            try:
                if not self._memory:
                    probe = self.folder / ".probe.tmp"
                    atomic_write_bytes(probe, b"x" * 4096)
                    probe.unlink()
                for stem in sorted(self._memory):
                    self._write(stem, self._memory[stem])
                    del self._memory[stem]
            except OSError:
                return len(self._memory)
            self._disk_failed = False
        logger.warning("outbox %s: the disk takes entries again; queuing on disk resumed", self.folder.name)
        if self.storage is not None:
            self.storage.ok(self.what)
        return 0

    def pending(self) -> list[Path]:
        """The entries on disk, oldest first, except that job messages wait behind every alert."""
        try:
            found = [p for p in self.folder.glob("*.json") if not p.name.startswith(".")]
        except OSError:
            return []
        return sorted(found, key=lambda p: _order(p.stem))

    def entries(self) -> list[Entry]:
        """Every waiting entry, oldest first: a path on disk or the stem of one held in memory."""
        with self._lock:
            held: list[Entry] = list(self._memory)
        return sorted([*self.pending(), *held], key=lambda e: _order(e.stem if isinstance(e, Path) else e))

    def load(self, entry: Entry) -> Notification | None:
        """The notification of ``entry``; None (and the file set aside) if it cannot be read."""
        if not isinstance(entry, Path):
            with self._lock:
                return self._memory.get(entry)
        path = entry
        try:
            data = json.loads(path.read_text())
            image_path = path.with_suffix(".jpg")
            image = image_path.read_bytes() if image_path.exists() else None
            notification = Notification.from_json(data, image)
            check_notification(notification)
            return notification
        except (OSError, ValueError, TypeError) as exc:
            logger.error("outbox %s: unreadable %s (%s): set aside", self.folder.name, path.name, exc)
            self.set_aside(path, f"unreadable: {exc}")
            return None

    def remove(self, entry: Entry) -> None:
        if not isinstance(entry, Path):
            with self._lock:
                self._memory.pop(entry, None)
            return
        entry.with_suffix(".jpg").unlink(missing_ok=True)
        entry.unlink(missing_ok=True)

    def set_aside(self, entry: Entry, reason: str = "refused") -> None:
        """Move ``entry`` to ``rejected/`` (one held in memory is dropped) and report it."""
        if self.on_set_aside is not None:
            try:
                self.on_set_aside(entry.name if isinstance(entry, Path) else entry, reason)
            except Exception as exc:  # a report must never keep the entry at the head of the queue
                logger.warning("outbox %s: set-aside report failed: %s", self.folder.name, exc)
        if not isinstance(entry, Path):
            with self._lock:
                notification = self._memory.pop(entry, None)
            if notification is not None:
                logger.error("outbox %s: %s refused, held in memory only: dropped", self.folder.name, entry)
            return
        rejected = self.folder / "rejected"
        try:
            rejected.mkdir(exist_ok=True)
            for part in (entry, entry.with_suffix(".jpg")):
                if part.exists():
                    os.replace(part, rejected / part.name)
        except OSError as exc:  # cannot move it (disk full, read-only): remove it, never block the queue
            logger.error("outbox %s: cannot set %s aside (%s): removed", self.folder.name, entry.name, exc)
            self.remove(entry)


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
        self.set_aside_count = 0
        self._retry: dict[str, tuple[int, float]] = {}  # entry stem -> (failed attempts, due, monotonic)
        self._channel_due = 0.0  # monotonic time before which the peer asked for no request at all
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
        """The delivery loop; an unexpected error is logged and the loop goes on (the thread never dies
        with alerts waiting: issue 14, defect 5)."""
        last_flush = 0.0
        while not self._stop.is_set():
            try:
                held = self.outbox.held_in_memory or self.outbox.disk_failed
                if held and time.monotonic() - last_flush >= FLUSH_RETRY_S:
                    last_flush = time.monotonic()
                    self.outbox.flush_memory()
                self._once()
            except Exception as exc:
                self.failures += 1
                logger.error("%s: delivery loop error: %s; going on", self.name, exc, exc_info=True)
                self._stop.wait(CRASH_WAIT_S)

    def _once(self) -> None:
        """Deliver (or wait for) the oldest entry that is due: an entry backing off after a failure waits
        on its own, the ones behind it go first; a peer's ``retry_after`` holds the whole channel."""
        entries = self.outbox.entries()
        if not entries:
            self._retry.clear()
            self._sleep(FLUSH_RETRY_S if self.outbox.disk_failed else IDLE_WAIT_S)
            return
        if not self.ready():
            self._stop.wait(NOT_READY_WAIT_S)
            return
        now = time.monotonic()
        if self._channel_due > now:
            self._sleep(self._channel_due - now)
            return
        names = [_name(e) for e in entries]
        for name in [n for n in self._retry if n not in names]:  # delivered, set aside or removed
            del self._retry[name]
        due = [e for e, n in zip(entries, names, strict=True) if self._retry.get(n, (0, 0.0))[1] <= now]
        if not due:
            self._sleep(min(due_at for _, due_at in self._retry.values()) - now)
            return
        entry = due[0]
        notification = self.outbox.load(entry)
        if notification is None:
            return
        age = time.time() - notification.created
        if age > self.max_age_s:
            logger.error("%s: %s undelivered for %.0f s: dropped", self.name, notification.key, age)
            self.outbox.remove(entry)
            return
        self._attempt(entry, notification)

    def _attempt(self, entry: Entry, notification: Notification) -> None:
        """Try once: delivered (removed), refused for good (set aside) or due again after a backoff."""
        name = _name(entry)
        attempt = self._retry.get(name, (0, 0.0))[0] + 1
        try:
            self.deliver(notification)
        except Exception as exc:  # DeliveryError, a refusal, a content error, anything unexpected
            if is_final(exc):
                self._retry.pop(name, None)
                self.set_aside_count += 1
                logger.error("%s: %s rejected for good (%s: %s): set aside in rejected/, the queue goes on",
                             self.name, notification.key, type(exc).__name__, exc)  # fmt: skip
                self.outbox.set_aside(entry, f"{type(exc).__name__}: {exc}")
                return
            self.failures += 1
            backoff = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
            peer_wait = exc.retry_after_s if isinstance(exc, DeliveryError) else None
            wait = peer_wait if peer_wait is not None else backoff
            now = time.monotonic()
            self._retry[name] = (attempt, now + wait)
            if peer_wait is not None:  # the peer asked the whole channel to wait
                self._channel_due = now + peer_wait
            level = logging.WARNING if attempt <= 3 or attempt % 10 == 0 else logging.DEBUG
            logger.log(level, "%s: %s attempt %d failed: %s; retry in %.1f s",
                       self.name, notification.key, attempt, exc, wait)  # fmt: skip
            return
        self._retry.pop(name, None)
        self.outbox.remove(entry)
        self.delivered += 1
        logger.info("%s: %s %s delivered (attempt %d)", self.name, notification.kind, notification.key,
                    attempt)  # fmt: skip


def _name(entry: Entry) -> str:
    """The stem of an entry, the same on disk and in memory (a held entry keeps it when it moves)."""
    return entry.stem if isinstance(entry, Path) else entry
