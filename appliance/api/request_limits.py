"""The API's front door for request bodies: the token before the body, a cap on every body, a cap on
how many bodies are read at once.

FastAPI reads and parses a route's JSON body before it runs the route's dependencies, so the token
check of :mod:`.access` came after the whole body was in memory: twenty concurrent 10 MB POSTs without
a token took the service from 137 MB to 510-682 MB RSS (issue 33 item 2). :class:`RequestLimits` is an
ASGI middleware around the whole application (wired in :mod:`.server`) that, for every request with a
method that carries a body (POST, PUT, PATCH, DELETE):

1. answers 503 (``Retry-After: 1``) without reading anything when ``MAX_BODY_REQUESTS`` such
   requests are already in progress;
2. answers 401 without reading the body when the route is a control route (:mod:`.routes_control`)
   and the request does not carry the token (the rule of :mod:`.access`, which checks it again:
   ``TokenAuth.allows_control`` where the auth has it, the console's session; else the bearer token);
3. answers 413 when the declared ``Content-Length`` is over the route's cap, and otherwise reads the
   body in the server's 64 kB pieces, stopping with 413 as soon as the cap is passed (a body without a
   length, chunked, is capped the same way). The cap is ``CONTROL_BODY_BYTES`` (4 kB: every control
   body is a few short fields) except for picture uploads, which may have
   :data:`~appliance.api.routes_control.MAX_UPLOAD_BYTES` and are streamed by their route.

uvicorn's ``limit_concurrency`` (:mod:`.server`) caps open connections and tasks on top of this. GET
requests pass untouched: their routes never read a body, and uvicorn stops reading an unread body
from the socket after 64 kB.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.routing import Match

from appliance.api import routes_control
from appliance.api.auth import TokenAuth

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTROL_BODY_BYTES = 4096  # the largest body of a control route (ignore zones: 16 rectangles, ~1.5 kB)
MAX_BODY_REQUESTS = 8  # requests with a body read at the same time (at most 8 x 8 MB of uploads)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UPLOAD_SUFFIX = "/examples"  # POST /api/cameras/{name}/examples: a picture, streamed by its route


def _is_control(scope: Scope) -> bool:
    """Whether the request is for a route of :mod:`.routes_control` (all of them need the token)."""
    for route in routes_control.router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            return True
    return False


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


async def _answer(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]  # fmt: skip
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: see the module's docstring. ``auth`` is the service's token."""

    def __init__(self, app: App, auth: TokenAuth, max_body_requests: int = MAX_BODY_REQUESTS,
                 control_body_bytes: int = CONTROL_BODY_BYTES) -> None:  # fmt: skip
        self.app = app
        self.auth = auth
        self.max_body_requests = max_body_requests
        self.control_body_bytes = control_body_bytes
        self.active = 0  # requests with a body in progress (the event loop is one thread: no lock)
        self.refused = {401: 0, 413: 0, 503: 0}  # counters, for tests and logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_body_requests:
            await self._refuse(send, 503, "too many requests at once; try again", {"Retry-After": "1"})
            return
        if _is_control(scope) and not self._allowed(scope):
            await self._refuse(send, 401, "a valid API token is needed", {"WWW-Authenticate": "Bearer"})
            return
        upload = scope["path"].endswith(UPLOAD_SUFFIX)
        cap = routes_control.MAX_UPLOAD_BYTES if upload else self.control_body_bytes
        declared = _declared_length(scope)
        if declared is not None and (declared < 0 or declared > cap):
            await self._refuse(send, 413, f"at most {cap} bytes")
            return
        self.active += 1
        try:
            if upload:  # streamed by the route, which stops at the same cap
                await self.app(scope, receive, send)
                return
            body = await self._read(receive, cap)
            if body is None:
                await self._refuse(send, 413, f"at most {cap} bytes")
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.active -= 1

    def _allowed(self, scope: Scope) -> bool:
        """The control rule of :mod:`.auth` on the raw headers: ``TokenAuth.allows_control`` where the token
        has more than one form (the console's session), else the ``Authorization: Bearer`` token."""
        allows_control = getattr(self.auth, "allows_control", None)
        if allows_control is not None:
            return bool(allows_control(scope.get("headers", ())))
        return self.auth.valid(_bearer(scope))

    async def _read(self, receive: Receive, cap: int) -> bytes | None:
        """The whole body, or None as soon as it passes ``cap`` bytes (or the client went away)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(
        self, send: Send, status: int, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        self.refused[status] = self.refused.get(status, 0) + 1
        count = self.refused[status]
        if count == 1 or count % 100 == 0:  # one line per 100: a flood does not flood the log
            logger.warning("API: %d request(s) refused with %d (%s)", count, status, detail)
        await _answer(send, status, detail, headers)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read ahead once, then the client's own messages (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
