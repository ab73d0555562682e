"""The ``openai_compatible`` judge: any OpenAI-style ``/chat/completions`` endpoint with images.

OpenRouter (the printer realtime bridge used Gemini Flash through it), OpenAI itself, or a model
server on the local network (llama.cpp, vLLM, Ollama's OpenAI endpoint). The frame goes as a
``data:image/jpeg;base64,...`` URL in an ``image_url`` content part next to the question; the
API key as ``Authorization: Bearer``. No other header or field is added.

Retries: 429 and 5xx answers and connection errors are retried with exponential backoff and full
jitter (``random() * min(backoff_base_s * 2**attempt, backoff_max_s)``, at least what a
``Retry-After`` header asks, within the same cap), never past the request's deadline. 401/403 are
credentials problems (reported, not retried); any other 4xx is a rejected request.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

import requests

from appliance.cloud.backend import JudgeBackend, JudgeReply, JudgeRequest
from appliance.config.cloud import OpenAICompatibleConfig
from appliance.errors import CloudCredentialsError, CloudReplyError, CloudUnavailableError
from appliance.service.log_redaction import register_secret

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def resolve_api_key(config: OpenAICompatibleConfig) -> str | None:
    """The API key: ``api_key_file``, else the ``api_key_env`` variable, else ``api_key``; None for
    servers that need none (a local model server)."""
    key: str | None = None
    if config.api_key_file is not None:
        try:
            key = config.api_key_file.read_text().strip() or None
        except OSError as exc:
            raise CloudCredentialsError(f"API key file {config.api_key_file}: {exc.strerror}") from None
    elif config.api_key_env and os.environ.get(config.api_key_env):
        key = os.environ[config.api_key_env].strip()
    elif config.api_key is not None:
        key = config.api_key.get_secret_value()
    register_secret(key)
    return key


class OpenAICompatibleJudge(JudgeBackend):
    """Asks a vision model behind an OpenAI-style chat completions endpoint."""

    name = "openai_compatible"

    def __init__(
        self,
        config: OpenAICompatibleConfig,
        request_timeout_s: float,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.request_timeout_s = request_timeout_s
        self.jitter = jitter
        self.sleep = sleep
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy or netrc from the environment: only what is configured
        key = resolve_api_key(config)
        if key:
            self.http.headers["Authorization"] = f"Bearer {key}"

    def _body(self, request: JudgeRequest) -> dict[str, Any]:
        image_url = "data:image/jpeg;base64," + base64.b64encode(request.jpeg).decode("ascii")
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": request.system},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": request.prompt},
                        {"type": "image_url", "image_url": {"url": image_url}},
                    ],
                },
            ],
            "max_tokens": self.config.max_tokens,
            "temperature": 0,
        }
        if self.config.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def backoff_s(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        cap = self.config.backoff_max_s
        delay = self.jitter() * min(self.config.backoff_base_s * 2**attempt, cap)
        if retry_after:
            with contextlib.suppress(ValueError):  # an HTTP date: the jittered backoff will do
                delay = max(delay, min(float(retry_after), cap))
        return delay

    def ask(self, request: JudgeRequest) -> JudgeReply:
        body = self._body(request)
        problem = "no attempt made"
        for attempt in range(self.config.max_attempts):
            remaining = request.deadline - time.monotonic()
            if remaining <= 0:
                break
            retry_after: str | None = None
            try:
                response = self.http.post(
                    self.url, json=body, timeout=(min(5.0, remaining), min(self.request_timeout_s, remaining))
                )
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}"
            else:
                if response.status_code == 200:
                    return self._reply(response)
                problem = f"HTTP {response.status_code}"
                if response.status_code in (401, 403):
                    raise CloudCredentialsError(f"{self.url} refused the API key: {problem}")
                if response.status_code not in RETRY_STATUS:
                    raise CloudReplyError(
                        f"{self.url} rejected the request: {problem} {response.text[:200]!r}"
                    )
                retry_after = response.headers.get("Retry-After")
            if attempt + 1 >= self.config.max_attempts:
                break
            delay = self.backoff_s(attempt, retry_after)
            if time.monotonic() + delay >= request.deadline:
                break
            logger.info("cloud: %s from %s, retry %d in %.2f s", problem, self.url, attempt + 1, delay)
            self.sleep(delay)
        raise CloudUnavailableError(f"{self.url}: {problem}")

    def _reply(self, response: requests.Response) -> JudgeReply:
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise CloudReplyError("chat completion without choices[0].message") from None
        if message.get("refusal"):
            raise CloudReplyError("the model refused to answer")
        if choice.get("finish_reason") == "content_filter":
            raise CloudReplyError("the answer was stopped by a content filter")
        content = message.get("content")
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str) or not content:
            raise CloudReplyError("chat completion without text")
        usage = data.get("usage") or {}
        return JudgeReply(content, usage.get("prompt_tokens"), usage.get("completion_tokens"))

    def close(self) -> None:
        self.http.close()
