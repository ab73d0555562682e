"""Local stand-ins for the cloud judge's peers, on 127.0.0.1, speaking the real wire formats.

One HTTP server answers three kinds of request:

- ``POST /model/{modelId}/converse``: Bedrock Runtime Converse (rest-json). The body is parsed
  (the image arrives base64-encoded, as botocore sends bytes) and answered with a Converse
  response, or an error in Bedrock's format (``x-amzn-ErrorType`` header, ``{"message": ...}``).
- ``POST /`` with ``Action=AssumeRole``: STS (query protocol, form body) answered with the
  ``AssumeRoleResponse`` XML holding fresh credentials the peer remembers.
- ``POST /v1/chat/completions``: an OpenAI-style chat endpoint (Bearer key checked).

SigV4 signatures are verified with botocore's own signer against the secret the peer knows for
the access key (from the test's credentials file or issued by its STS), so a test can tell which
credentials signed each request. Answers are scripted per kind (a queue, then a default).
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]+)"
)


@dataclass
class Answer:
    """An HTTP answer; ``delay_s`` seconds pass before it is sent."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    """One request the peer received."""

    kind: str  # converse, assume_role, chat, unknown
    at: float  # time.monotonic() on arrival
    path: str
    headers: dict[str, str]
    body: bytes
    access_key: str | None = None
    token: str | None = None
    signature_ok: bool | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def image(self) -> bytes:
        """The JPEG bytes of a Converse or chat request."""
        data = self.json()
        if self.kind == "converse":
            block = data["messages"][0]["content"][0]["image"]
            return base64.b64decode(block["source"]["bytes"])
        part = next(p for p in data["messages"][1]["content"] if p["type"] == "image_url")
        return base64.b64decode(part["image_url"]["url"].split(",", 1)[1])


# -- answers in the real formats ------------------------------------------------------------------
def verdict_json(failure: bool = True, confidence: float = 0.9, kind: str = "spaghetti", **extra: Any) -> str:
    kind = kind if failure else "none"
    return json.dumps(
        {"failure": failure, "confidence": confidence, "kind": kind, "description": "x", **extra}
    )


def bedrock_text(text: str, stop: str = "end_turn", tokens: tuple[int, int] = (1500, 40)) -> Answer:
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1], "totalTokens": sum(tokens)},
        "metrics": {"latencyMs": 420},
    }
    return Answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def bedrock_error(status: int, code: str, message: str = "error") -> Answer:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"}
    return Answer(status, json.dumps({"message": message}).encode(), headers)


def sts_error(code: str, message: str, status: int = 403) -> Answer:
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    )
    return Answer(status, body.encode(), {"Content-Type": "text/xml"})


def chat_text(text: str | None, finish: str = "stop", refusal: str | None = None) -> Answer:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "test/vision",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": refusal},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 900, "completion_tokens": 30, "total_tokens": 930},
    }
    return Answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def http_error(status: int, message: str = "error", retry_after: str | None = None) -> Answer:
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Answer(status, json.dumps({"error": {"message": message}}).encode(), headers)


class CloudPeer:
    """The server. ``secrets`` maps access key ids to secrets the peer accepts signatures from."""

    def __init__(self, api_key: str | None = None):
        self.secrets: dict[str, str] = {}
        self.issued: list[dict[str, Any]] = []  # every STS credential set handed out
        self.revoked: set[str] = set()  # access keys Bedrock answers ExpiredTokenException for
        self.revoke_new = False  # revoke every key STS issues from now on
        self.api_key = api_key
        self.seen: list[Seen] = []
        self.converse: deque[Answer] = deque()
        self.chat: deque[Answer] = deque()
        self.sts: deque[Answer] = deque()
        self.sts_lifetimes_s: deque[float] = deque()  # per AssumeRole; then 3600
        self.default_converse = bedrock_text(verdict_json(True))
        self.default_chat = chat_text(verdict_json(True))
        self._serial = itertools.count(1)
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = peer.handle("POST", self.path, dict(self.headers.items()), body)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.send_header("x-amzn-RequestId", f"req-{next(peer._serial)}")
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- bookkeeping --------------------------------------------------------------------------
    def of(self, kind: str) -> list[Seen]:
        return [s for s in self.seen if s.kind == kind]

    def all_secrets(self) -> list[str]:
        """Every key, secret and token the peer knows: none may appear in a log."""
        values = [*self.secrets, *self.secrets.values()]
        values += [c["SessionToken"] for c in self.issued]
        if self.api_key:
            values.append(self.api_key)
        return values

    def _verify(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[str | None, bool]:
        lower = {k.lower(): v for k, v in headers.items()}
        match = _AUTH.match(lower.get("authorization", ""))
        if not match:
            return None, False
        key = match["key"]
        secret = self.secrets.get(key)
        if secret is None:
            return key, False
        names = match["signed"].split(";")
        request = AWSRequest(
            method=method,
            url=f"http://{lower['host']}{path}",
            data=body,
            headers={n: lower[n] for n in names},
        )
        request.context["timestamp"] = lower["x-amz-date"]
        signer = SigV4Auth(
            Credentials(key, secret, lower.get("x-amz-security-token")), match["service"], match["region"]
        )
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        return key, hmac.compare_digest(expected, match["signature"])

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        lower = {k.lower(): v for k, v in headers.items()}
        if path.startswith("/model/") and path.endswith("/converse"):
            kind = "converse"
        elif path.endswith("/chat/completions"):
            kind = "chat"
        elif b"Action=AssumeRole" in body:
            kind = "assume_role"
        else:
            kind = "unknown"
        seen = Seen(kind, time.monotonic(), path, headers, body, token=lower.get("x-amz-security-token"))
        if kind in ("converse", "assume_role"):
            seen.access_key, seen.signature_ok = self._verify(method, path, headers, body)
        with self._lock:
            self.seen.append(seen)
        if kind == "converse":
            return self._converse(seen)
        if kind == "assume_role":
            return self._assume_role(seen)
        if kind == "chat":
            if self.api_key and lower.get("authorization") != f"Bearer {self.api_key}":
                return http_error(401, "invalid api key")
            return self.chat.popleft() if self.chat else self.default_chat
        return http_error(404, "no such route")

    def _converse(self, seen: Seen) -> Answer:
        if not seen.signature_ok:
            return bedrock_error(403, "InvalidSignatureException", "signature does not match")
        if seen.access_key in self.revoked:
            return bedrock_error(
                403, "ExpiredTokenException", "The security token included in the request is expired"
            )
        return self.converse.popleft() if self.converse else self.default_converse

    def _assume_role(self, seen: Seen) -> Answer:
        if not seen.signature_ok:
            return sts_error("SignatureDoesNotMatch", "signature does not match")
        if self.sts:
            return self.sts.popleft()
        form = seen.form()
        n = next(self._serial)
        lifetime = self.sts_lifetimes_s.popleft() if self.sts_lifetimes_s else 3600.0
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime)
        issued = {
            "AccessKeyId": f"ASIATESTROLE{n:08d}",
            "SecretAccessKey": f"role-secret-{n:04d}-{'s' * 24}",
            "SessionToken": f"role-session-token-{n:04d}-{'t' * 40}",
            "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RoleArn": form.get("RoleArn", ""),
            "Duration": form.get("DurationSeconds", ""),
        }
        with self._lock:
            self.issued.append(issued)
            self.secrets[issued["AccessKeyId"]] = issued["SecretAccessKey"]
            if self.revoke_new:
                self.revoked.add(issued["AccessKeyId"])
        session = unquote(form.get("RoleSessionName", "s"))
        body = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
            f"<Credentials><AccessKeyId>{issued['AccessKeyId']}</AccessKeyId>"
            f"<SecretAccessKey>{issued['SecretAccessKey']}</SecretAccessKey>"
            f"<SessionToken>{issued['SessionToken']}</SessionToken>"
            f"<Expiration>{issued['Expiration']}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROATEST:{session}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::123456789012:assumed-role/layerwatch/{session}</Arn></AssumedRoleUser>"
            "<PackedPolicySize>6</PackedPolicySize></AssumeRoleResult>"
            "<ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></AssumeRoleResponse>"
        )
        return Answer(200, body.encode(), {"Content-Type": "text/xml"})


def write_credentials(path: Any, profiles: dict[str, tuple[str, str]], peer: CloudPeer | None = None) -> Any:
    """A shared-credentials file with ``profiles`` (name -> (key, secret)); the peer learns them."""
    lines = []
    for name, (key, secret) in profiles.items():
        lines += [f"[{name}]", f"aws_access_key_id = {key}", f"aws_secret_access_key = {secret}", ""]
        if peer is not None:
            peer.secrets[key] = secret
    path.write_text("\n".join(lines))
    return path


def assert_no_secrets_logged(records: list[Any], text: str, secrets: list[str]) -> None:
    """No key, secret or token in the captured log text nor in any record's message."""
    messages = [text, *(r.getMessage() for r in records)]
    leaked = sorted({s for s in secrets if any(s in m for m in messages)})
    assert not leaked, f"secrets in the log: {[s[:6] + '...' for s in leaked]}"
