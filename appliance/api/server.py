"""uvicorn on its own daemon thread, inside ``layerwatch run``.

:meth:`ApiServer.start` only binds the socket (a port that cannot be bound is logged as an error and the
service runs on without the API, as with a broken channel); FastAPI and uvicorn are imported, the app
built and served on the server's thread with its own event loop. In the service that thread first waits
for READY (``after``, at most ``START_WAIT_S``): its imports hold the GIL for most of their time, and on a
slow board they would slow the first frame's analysis (measured on the arm64 image's root under
qemu-user emulation: uvicorn, FastAPI and the app's routes took 8-10 s of imports there). A browser
that connects meanwhile waits in the socket's backlog. The analysis loop never calls into it: events
reach it through ``call_soon_threadsafe``. Every request passes
:class:`~appliance.api.request_limits.RequestLimits` first (the token before a control body is read,
every body capped) and uvicorn serves at most
``MAX_CONNECTIONS`` at once. ``stop()`` asks uvicorn to exit, gives open streams ``GRACE_S`` to close and
returns within about two seconds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.api.sink import ApiSink

logger = logging.getLogger(__name__)

GRACE_S = 1
#: the longest the server waits for the service's READY before it serves anyway (seconds)
START_WAIT_S = 30.0
#: connections and tasks served at once; uvicorn answers 503 beyond (issue 33: 200 concurrent SSE, MJPEG and
#: status clients must still be served, a flood of requests must not take the memory of a 512 MB board)
MAX_CONNECTIONS = 256


class ApiServer:
    def __init__(self, sink: ApiSink, host: str, port: int, after: threading.Event | None = None):
        self.sink = sink
        self.after = after  # serve once this is set (the service's READY), or after START_WAIT_S
        self.host, self.port = host, port
        self.thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self.bound_port: int | None = None
        self.server: Any = None  # the uvicorn.Server, once the thread made it
        self._socket: socket.socket | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            logger.error(
                "API: cannot listen on %s:%d: %s; the service runs without it", self.host, self.port, exc
            )
            return
        self._socket = sock
        self.bound_port = sock.getsockname()[1]
        logger.info("API and web console on http://%s:%d/", self.host, self.bound_port)
        self.thread.start()

    def _run(self) -> None:
        if self.after is not None:
            waited = 0.0
            while not self.after.wait(0.2) and not self._stop.is_set() and waited < START_WAIT_S:
                waited += 0.2
        if self._stop.is_set():
            assert self._socket is not None
            self._socket.close()
            return
        import uvicorn

        from appliance.api.app import build_app
        from appliance.api.request_limits import RequestLimits

        assert self._socket is not None
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.sink.events.attach(loop)
        try:
            app = RequestLimits(build_app(self.sink), self.sink.auth)  # the token before any body
            config = uvicorn.Config(
                app, log_level="warning", access_log=False, lifespan="off", limit_concurrency=MAX_CONNECTIONS,
                timeout_graceful_shutdown=GRACE_S, server_header=False, ws="none", loop="asyncio",
            )  # fmt: skip
            self.server = uvicorn.Server(config)
            if not self._stop.is_set():
                loop.run_until_complete(self.server.serve(sockets=[self._socket]))
        except Exception as exc:
            logger.error("API server stopped: %s", exc, exc_info=True)
        finally:
            loop.close()
            self._socket.close()

    def stop(self) -> None:
        self._stop.set()
        if not self.thread.is_alive():
            return
        deadline = GRACE_S + 1.0
        if self.server is None:  # still importing: it sees _stop before serving
            self.thread.join(deadline)
            if self.server is None:
                return
        self.server.should_exit = True
        self.thread.join(deadline)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(0.5)
