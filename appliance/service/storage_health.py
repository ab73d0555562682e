"""Which writes under ``service.state_dir`` fail right now (a full disk, a read-only card), for everyone
who shows the appliance's health.

Issue 14, defect 3: a full disk used to be visible only in the log. Writers report here:
the outboxes (``outbox <channel>``: the alert is then held in memory and still delivered, see
:mod:`appliance.actions.outbox`) and the evidence images (``evidence``). Readers:

* the MQTT state JSON of every camera: ``storage`` (``ok``, ``disk_full`` or ``write_error``) and a line in
  ``problems`` (:meth:`CameraPipeline.state_payload`);
* a ``storage_problem`` / ``storage_ok`` device event on MQTT ``P/event`` at each change (the service wires
  :meth:`listen` to its event hub);
* the status light's ``storage`` pattern (:class:`~appliance.hardware.board_sink.BoardSink`);
* systemd: ``STATUS=`` ends with ``storage: disk full (...)`` (``systemctl status layerwatch``).

A problem is cleared by the writer that reported it once a write succeeds again (an outbox clears its own
after it moved the alerts it held in memory back to disk). Problems without such a writer retrying (the
evidence images) are probed by :meth:`check`: every ``PROBE_INTERVAL_S`` a small file is written and removed
in the state folder; when that works the problem is cleared.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance.state_files import atomic_write_bytes

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S = 5.0
PROBE_FILE = ".storage-probe"
FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

Listener = Callable[[str, dict[str, object]], None]


def _kind(exc: OSError) -> str:
    return "disk_full" if exc.errno in FULL_ERRNOS else "write_error"


class StorageHealth:
    """Thread-safe: outbox workers, the analysis loop and the status light use it at once."""

    def __init__(self, state_dir: Path | None = None):
        self.state_dir = state_dir
        self._problems: dict[str, tuple[str, str]] = {}  # what -> (kind, error text)
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._last_probe = 0.0

    def listen(self, listener: Listener) -> None:
        """``listener(event, payload)`` at every change: ``storage_problem`` or ``storage_ok``."""
        self._listeners.append(listener)

    def failed(self, what: str, exc: OSError) -> None:
        """A write of ``what`` failed (logged once per problem, not per write)."""
        problem = (_kind(exc), exc.strerror or str(exc))
        with self._lock:
            new = self._problems.get(what) != problem
            self._problems[what] = problem
        if new:
            logger.error("storage: %s cannot be written (%s): %s", what, problem[0], problem[1])
            self._tell("storage_problem", {"what": what, "problem": problem[0], "error": problem[1]})

    def ok(self, what: str) -> None:
        """A write of ``what`` succeeded again."""
        with self._lock:
            gone = self._problems.pop(what, None)
        if gone is not None:
            logger.warning("storage: %s written again (was %s)", what, gone[0])
            self._tell("storage_ok", {"what": what})

    def state(self) -> str:
        """``ok``, ``disk_full`` or ``write_error`` (the worst current problem)."""
        with self._lock:
            kinds = {kind for kind, _ in self._problems.values()}
        return "disk_full" if "disk_full" in kinds else ("write_error" if kinds else "ok")

    def messages(self) -> list[str]:
        with self._lock:
            items = sorted(self._problems.items())
        return [f"storage: {what} cannot be written ({kind}: {error})" for what, (kind, error) in items]

    def summary(self) -> str | None:
        """One line for ``STATUS=`` (None when all is well)."""
        with self._lock:
            items = sorted(self._problems.items())
        if not items:
            return None
        kind = "disk full" if any(k == "disk_full" for _, (k, _) in items) else "write error"
        return f"storage: {kind} ({', '.join(what for what, _ in items)})"

    def check(self, now: float | None = None) -> None:
        """Probe the state folder for the problems no writer retries (call about once a second)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            probed = [what for what in self._problems if not what.startswith("outbox ")]
        if not probed or self.state_dir is None or now - self._last_probe < PROBE_INTERVAL_S:
            return
        self._last_probe = now
        probe = self.state_dir / PROBE_FILE
        try:
            atomic_write_bytes(probe, b"x" * 4096)
            probe.unlink()
        except OSError:
            return
        for what in probed:
            self.ok(what)

    def _tell(self, event: str, payload: dict[str, object]) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, payload)
            except Exception as exc:
                logger.debug("storage listener failed: %s", exc)
