"""A ``layerwatch run`` child process for the fault suite, its output read as it comes.

Both pipes are drained by threads (a full pipe would stall the service) and every line is kept with its
arrival time, so a test can count the frames analysed in a window (``--print-decisions`` prints one line
per analysed frame) and wait for a log line, all with bounded waits.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.service_harness import start_service


class LiveService:
    def __init__(self, config: Path, env: dict[str, str] | None = None, *args: str):
        self.started_at = time.monotonic()
        self.proc: subprocess.Popen[str] = start_service(config, env, "--print-decisions", *args)
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[tuple[float, str]]) -> None:  # type: ignore[no-untyped-def]
        for line in iter(stream.readline, ""):
            with self._lock:
                lines.append((time.monotonic(), line.rstrip("\n")))

    def frames_between(self, start: float, end: float) -> int:
        """Frames analysed (``--print-decisions`` lines) that arrived in [start, end)."""
        with self._lock:
            return sum(
                1 for at, line in self.out if start <= at < end and " frame " in line and "score" in line
            )

    def log(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.err)

    def log_count(self, needle: str) -> int:
        with self._lock:
            return sum(needle in line for _, line in self.err)

    def wait_log(self, needle: str, timeout: float = 30.0, count: int = 1) -> float:
        """Wait until ``needle`` appeared ``count`` times in the log; returns the arrival of the last one."""
        deadline = time.monotonic() + timeout
        exited = False
        while time.monotonic() < deadline:
            with self._lock:
                hits = [at for at, line in self.err if needle in line]
            if len(hits) >= count:
                return hits[count - 1]
            if exited:
                break
            exited = self.proc.poll() is not None  # one more look once the last lines are read
            time.sleep(0.3 if exited else 0.05)
        raise AssertionError(f"no {needle!r} x{count} within {timeout} s; log tail:\n{self.log()[-3000:]}")

    def wait_frames(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.frames_between(0, float("inf")) >= count:
                return
            assert self.proc.poll() is None, self.log()[-3000:]
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} frames within {timeout} s; log tail:\n{self.log()[-3000:]}")

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds from the signal to the exit)."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        took = time.monotonic() - sent
        for reader in self._readers:
            reader.join(2.0)
        return rc, took

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        for reader in self._readers:
            reader.join(2.0)
