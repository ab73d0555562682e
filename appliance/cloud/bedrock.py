"""The ``bedrock`` judge: AWS Bedrock's Converse API with the frame as image bytes.

One ``converse`` call per question: a system prompt, one user message holding the JPEG (as raw
bytes: botocore base64-encodes them on the wire) and the question, ``temperature`` 0. The model is
``cloud.bedrock.model_id``: a model id or an inference profile ARN (``INFERENCE_PROFILE_ARN``).

Throttling (``ThrottlingException``, 429) and 5xx are retried by botocore's ``standard`` (or
``adaptive``) retry mode: exponential backoff with full jitter, ``max_attempts`` attempts in all.
The n-th wait is ``random() * scale * 2**(n-1)`` seconds; ``scale`` is 1 s for throttling, and for
5xx 1 s in older botocore but 50 ms in botocore's "new retries" (botocore 1.44, so a 503 is retried
within about 0.35 s in all). Both botocore lines are tested (see ``pyproject.toml`` for the range).
Credentials come from :mod:`.aws_credentials`. When Bedrock or STS refuses them (expired, revoked,
a rotated file), the client is rebuilt once with freshly fetched credentials and the call is made
once more; a second refusal is reported as :class:`~appliance.errors.CloudCredentialsError` and the
judge's circuit breaker keeps further calls off until its cool-off: no retry loop.
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.cloud.aws_credentials import CREDENTIAL_ERROR_CODES, AwsCredentialSource
from appliance.cloud.backend import JudgeBackend, JudgeReply, JudgeRequest
from appliance.config.cloud import BedrockConfig
from appliance.errors import CloudCredentialsError, CloudReplyError, CloudUnavailableError

logger = logging.getLogger(__name__)

REFUSAL_STOP_REASONS = frozenset({"content_filtered", "guardrail_intervened"})


class BedrockJudge(JudgeBackend):
    """Asks a Bedrock model through ``bedrock-runtime`` Converse."""

    name = "bedrock"

    def __init__(self, config: BedrockConfig, request_timeout_s: float):
        if not config.model_id:
            raise CloudReplyError("cloud.bedrock.model_id is not set")
        self.config = config
        self.model_id: str = config.model_id
        self.request_timeout_s = request_timeout_s
        self.credentials = AwsCredentialSource(config, request_timeout_s)
        self.client_builds = 0
        self._client: Any = self._build_client()

    def _build_client(self) -> Any:
        from botocore.config import Config

        self.client_builds += 1
        client = self.credentials.session().create_client(
            "bedrock-runtime",
            region_name=self.config.region,
            endpoint_url=self.config.endpoint_url,
            config=Config(
                connect_timeout=min(5.0, self.request_timeout_s),
                read_timeout=self.request_timeout_s,
                retries={"mode": self.config.retry_mode, "total_max_attempts": self.config.max_attempts},
                tcp_keepalive=True,
            ),
        )
        return client

    def ask(self, request: JudgeRequest) -> JudgeReply:
        try:
            return self._converse(request)
        except CloudCredentialsError as exc:
            logger.warning("cloud: bedrock refused the credentials (%s): fetching fresh ones once", exc)
        self._client.close()
        self._client = self._build_client()
        return self._converse(request)

    def _converse(self, request: JudgeRequest) -> JudgeReply:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.converse(
                modelId=self.model_id,
                system=[{"text": request.system}],
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"image": {"format": "jpeg", "source": {"bytes": request.jpeg}}},
                            {"text": request.prompt},
                        ],
                    }
                ],
                inferenceConfig={"maxTokens": self.config.max_tokens, "temperature": 0.0},
            )
        except ClientError as exc:
            raise self._classify(exc) from None
        except CloudCredentialsError:
            raise  # STS or the credentials file, from botocore's refresh callback
        except BotoCoreError as exc:
            raise CloudUnavailableError(f"bedrock unreachable: {type(exc).__name__}: {exc}") from None
        return self._reply(response)

    def _classify(self, exc: Any) -> Exception:
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        text = f"bedrock {code} (HTTP {status}, {attempts} retries): {error.get('Message', '')}"
        if code in CREDENTIAL_ERROR_CODES:
            return CloudCredentialsError(text)
        if status == 429 or status >= 500 or code in ("ThrottlingException", "ModelTimeoutException"):
            return CloudUnavailableError(text)
        return CloudReplyError(text)

    def _reply(self, response: dict[str, Any]) -> JudgeReply:
        stop = response.get("stopReason", "")
        if stop in REFUSAL_STOP_REASONS:
            raise CloudReplyError(f"bedrock refused to answer (stopReason {stop})")
        content = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(block["text"] for block in content if isinstance(block.get("text"), str))
        if not text:
            raise CloudReplyError(f"bedrock answered without text (stopReason {stop or '?'})")
        usage = response.get("usage", {})
        return JudgeReply(text, usage.get("inputTokens"), usage.get("outputTokens"))

    def close(self) -> None:
        self._client.close()
