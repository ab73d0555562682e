"""uvicorn on its own daemon thread, inside ``layerwatch run``.

The server gets its own event loop on that thread; the analysis loop never calls into it (events reach
it through ``call_soon_threadsafe``). A port that cannot be bound is logged as an error and the service
runs on without the API (as a broken channel would). ``stop()`` asks uvicorn to exit, gives open
streams ``GRACE_S`` to close and returns within about two seconds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import uvicorn
from fastapi import FastAPI

from appliance.api.events import EventBroadcaster

logger = logging.getLogger(__name__)

GRACE_S = 1


class ApiServer:
    def __init__(self, app: FastAPI, host: str, port: int, events: EventBroadcaster):
        self.app = app
        self.host, self.port = host, port
        self.events = events
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=GRACE_S, server_header=False, ws="none", loop="asyncio",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self.bound_port: int | None = None
        self._socket: socket.socket | None = None

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            logger.error(
                "API: cannot listen on %s:%d: %s; the service runs without it", self.host, self.port, exc
            )
            return
        sock.set_inheritable(True)
        self._socket = sock
        self.bound_port = sock.getsockname()[1]
        logger.info("API and web console on http://%s:%d/", self.host, self.bound_port)
        self.thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.events.attach(loop)
        try:
            assert self._socket is not None
            loop.run_until_complete(self.server.serve(sockets=[self._socket]))
        except Exception as exc:
            logger.error("API server stopped: %s", exc, exc_info=True)
        finally:
            loop.close()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.server.should_exit = True
        self.thread.join(GRACE_S + 1.0)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(0.5)
