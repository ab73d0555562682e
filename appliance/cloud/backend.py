"""The interface every judge plugin implements, and what goes in and comes out of one call.

A plugin turns a :class:`JudgeRequest` (one JPEG and the prompt: nothing else leaves the device)
into a :class:`JudgeReply` (the model's text and the token counts the provider reports), or raises
one of the :class:`~appliance.errors.CloudError` leaves:

- :class:`~appliance.errors.CloudUnavailableError`: unreachable, timed out, throttled or 5xx after
  the plugin's own retries (counts towards the circuit breaker);
- :class:`~appliance.errors.CloudReplyError`: an answer that is not a verdict (refusal, content
  filter, a rejected 4xx request);
- :class:`~appliance.errors.CloudCredentialsError`: credentials refused even after one refresh.

Plugins are called from the judge's worker thread, one call at a time.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field


@dataclass(frozen=True)
class JudgeRequest:
    """One question for the judge: the (cropped, downscaled) frame as JPEG bytes and the prompt."""

    jpeg: bytes = field(repr=False)
    prompt: str
    system: str
    #: the latest time.monotonic() at which an answer is still useful; plugins stop retrying after it
    deadline: float


@dataclass(frozen=True)
class JudgeReply:
    """The model's answer text and the token counts the provider reported (None: not reported)."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


class JudgeBackend(abc.ABC):
    """A judge plugin (one file per provider, picked by ``cloud.type``)."""

    #: the plugin's name as ``cloud.type`` spells it
    name: str = "abstract"

    @abc.abstractmethod
    def ask(self, request: JudgeRequest) -> JudgeReply:
        """Send one request; raise a :class:`~appliance.errors.CloudError` leaf when there is no answer."""

    def close(self) -> None:  # noqa: B027 - optional hook, most plugins hold nothing to release
        """Release connections. Safe to call twice."""
