"""The frame-source interface every camera plugin implements.

A source hands out :class:`Frame` objects, each newer than the one before: ``read()`` never returns
a frame the caller has already seen and never a backlog of buffered ones. Network sources keep only
the newest frame (a grabber thread drops the rest and counts them), so analysis always looks at
"now", however slow the detector is.

Errors are :class:`~appliance.errors.SourceError` subclasses: ``SourceUnavailableError`` (nothing to
connect to; the source keeps reconnecting in the background), ``SourceFrozenError`` (connected, but
no new frame for ``frozen_after_s``) and ``EndOfStreamError`` (a replay without ``loop`` ran out).
"""

from __future__ import annotations

import abc
import enum
import time
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured picture.

    ``image`` is BGR ``uint8`` of shape (height, width, 3): what the detector analyses.
    ``evidence`` is an optional larger picture of the same moment for alert snapshots (the CSI
    camera's ``main`` stream); ``None`` means ``image`` serves as evidence too.
    ``timestamp`` is wall-clock seconds (``time.time()``) at capture; ``sequence`` counts frames
    from 0 per source.
    """

    image: np.ndarray
    timestamp: float
    sequence: int
    evidence: np.ndarray | None = None

    @property
    def evidence_image(self) -> np.ndarray:
        return self.image if self.evidence is None else self.evidence


class SourceState(enum.StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    FROZEN = "frozen"
    OFFLINE = "offline"
    ENDED = "ended"
    CLOSED = "closed"


@dataclass
class SourceStatus:
    """Counters a source keeps for telemetry."""

    state: SourceState = SourceState.CONNECTING
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    last_error: str | None = None
    last_frame_at: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


class FrameSource(abc.ABC):
    """A camera. Use as a context manager, or call :meth:`open` and :meth:`close` yourself.

    ``close()`` is idempotent and stops any background thread within about a second.
    """

    kind: str = "abstract"

    def __init__(self, name: str):
        self.name = name
        self.status = SourceStatus()

    @abc.abstractmethod
    def open(self) -> None:
        """Start capturing. Network sources return at once and connect in the background."""

    @abc.abstractmethod
    def read(self, timeout_s: float | None = None) -> Frame:
        """Return the newest frame not yet returned, waiting up to ``timeout_s`` seconds for one
        (``None``: the source's own frozen-stream limit)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop capturing and release the device. Safe to call twice."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _mark_frame(self) -> None:
        self.status.frames += 1
        self.status.last_frame_at = time.monotonic()
        self.status.state = SourceState.ONLINE
