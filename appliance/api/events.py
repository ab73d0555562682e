"""Live updates for the page: server-sent events, and the MJPEG live view.

:class:`EventBroadcaster` takes events from any thread (the analysis loop's sink calls) and hands them to
every ``GET /api/events`` client through the server's event loop (``call_soon_threadsafe``: the caller
never waits). Each client has a bounded queue (``CLIENT_QUEUE``); a client that does not read loses its
oldest events, never the caller's time. Event kinds: ``camera`` (score, decision, state, at most once a
second per camera), ``state`` (a camera state change), ``alert``, ``alert_update`` (acknowledged,
answered), ``printer``, ``device`` (printer countdown and action outcomes), ``calibration``.

:func:`mjpeg_frames` yields ``multipart/x-mixed-replace`` parts at most ``max_fps`` a second, and only
when the camera has a newer frame; the JPEG is encoded once per frame for every client, in a worker
thread. A client that stops reading blocks only its own generator (uvicorn's flow control).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

CLIENT_QUEUE = 64
KEEPALIVE_S = 15.0
BOUNDARY = "layerwatchframe"


class EventBroadcaster:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[asyncio.Queue[tuple[str, dict[str, Any]]]] = set()
        self._lock = threading.Lock()
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """From any thread; returns at once."""
        loop = self._loop
        if loop is None or not self._clients:
            return
        with contextlib.suppress(RuntimeError):  # the server's loop has ended
            loop.call_soon_threadsafe(self._fan_out, kind, data)

    def _fan_out(self, kind: str, data: dict[str, Any]) -> None:
        for queue in list(self._clients):
            if queue.full():
                queue.get_nowait()  # a slow client loses its oldest event
            queue.put_nowait((kind, data))

    async def stream(self, is_disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
        """The ``text/event-stream`` of one client, until it goes away or the server stops."""
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(CLIENT_QUEUE)
        self._clients.add(queue)
        try:
            yield "retry: 2000\n\n"
            while not self.closed:
                try:
                    kind, data = await asyncio.wait_for(queue.get(), timeout=1.0)
                except TimeoutError:
                    if await is_disconnected():
                        return
                    continue
                yield f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
        finally:
            self._clients.discard(queue)

    @property
    def clients(self) -> int:
        return len(self._clients)


async def mjpeg_frames(
    sequence: Callable[[], int | None],
    jpeg: Callable[[], bytes | None],
    max_fps: float,
    stopping: Callable[[], bool],
) -> AsyncIterator[bytes]:
    """MJPEG parts of one camera: a new part when ``sequence()`` changes, at most ``max_fps`` a second."""
    last: int | None = None
    pause = 1.0 / max_fps
    while not stopping():
        current = sequence()
        if current is not None and current != last:
            data = await asyncio.to_thread(jpeg)
            if data:
                last = current
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                yield head.encode() + data + b"\r\n"
        await asyncio.sleep(pause)
