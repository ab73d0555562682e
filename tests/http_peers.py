"""Local HTTP servers standing in for Discord, Telegram, OctoPrint and Moonraker.

:class:`HttpPeer` is a real ``http.server`` on 127.0.0.1 that records every request (multipart
bodies parsed into their parts with the standard library's MIME parser) and answers from a script:
queued ``(status, json_body, headers)`` replies first, then ``default``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float
    parts: dict[str, Part] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    def field(self, name: str) -> str:
        """A form field, from a multipart or an urlencoded body."""
        if name in self.parts:
            return self.parts[name].text
        return parse_qs(self.body.decode())[name][0]


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part]:
    """Split a multipart/form-data body into its named parts (raises if it is malformed)."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("not a multipart body")
    parts: dict[str, Part] = {}
    for item in message.iter_parts():
        disposition = item.get("Content-Disposition", "")
        if not disposition.startswith("form-data"):
            raise ValueError(f"part without form-data disposition: {disposition!r}")
        name = item.get_param("name", header="content-disposition")
        filename = item.get_filename()
        payload = item.get_payload(decode=True) or b""
        parts[str(name)] = Part(str(name), filename, item.get_content_type(), payload)
    return parts


Reply = tuple[int, Any, dict[str, str]]


class HttpPeer:
    def __init__(self, default: Reply = (200, {"ok": True}, {})):
        self.default = default
        self.script: list[Reply] = []
        self.requests: list[Request] = []
        self.responder: Callable[[Request], Reply | None] | None = None
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                request = Request(self.command, url.path, parse_qs(url.query, keep_blank_values=True),
                                  dict(self.headers.items()), body, time.monotonic())  # fmt: skip
                content_type = self.headers.get("Content-Type", "")
                if content_type.startswith("multipart/form-data"):
                    request.parts = parse_multipart(content_type, body)
                with peer.lock:
                    peer.requests.append(request)
                    reply = peer.responder(request) if peer.responder else None
                    if reply is None:
                        reply = peer.script.pop(0) if peer.script else peer.default
                status, payload, headers = reply
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _handle
            do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def posts(self, path_prefix: str = "") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and r.path.startswith(path_prefix)]

    def wait_posts(self, count: int, path_prefix: str = "", timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.posts(path_prefix)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} POSTs to {path_prefix!r}, got {len(self.posts(path_prefix))}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serving(default: Reply = (200, {"ok": True}, {})) -> Iterator[HttpPeer]:
    """An :class:`HttpPeer` for the duration of a ``with`` block (use it in a test's fixture)."""
    peer = HttpPeer(default)
    try:
        yield peer
    finally:
        peer.close()
