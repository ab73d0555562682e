"""What the judge is asked, and how its answer is checked.

The prompt asks for one JSON object and nothing else::

    {"failure": true, "confidence": 0.85, "kind": "spaghetti", "description": "loose strands ..."}

:func:`parse_verdict` accepts exactly that (optionally inside one Markdown code fence, which many
models add despite being told not to) and validates it strictly with pydantic: ``failure`` a real
boolean, ``confidence`` a number in [0, 1], ``kind`` one of :data:`KINDS`, ``description`` a short
string, no other keys. Anything else raises :class:`~appliance.errors.CloudReplyError`, which the
judge turns into "no verdict" (the frame stays ``uncertain``): a malformed answer never crashes the
loop and never counts as a failure.
"""

from __future__ import annotations

import json
import math
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from appliance.errors import CloudReplyError

KINDS = (
    "none",
    "spaghetti",
    "detached",
    "layer_shift",
    "warping",
    "blob",
    "stringing",
    "under_extrusion",
    "other",
)

SYSTEM_PROMPT = (
    "You inspect photos of a 3D printer for print failures. You answer with one JSON object and "
    "nothing else: no prose, no Markdown."
)

USER_PROMPT = (
    "This picture comes from a camera watching a 3D printer while it prints. Is the print failing?\n"
    "Signs of failure: loose or tangled filament ('spaghetti'), a part knocked loose or detached from "
    "the bed, shifted layers, strong warping, a blob of plastic on the nozzle, nothing being printed "
    "where a part should grow. A normal print in progress, an empty bed or a finished part is not a "
    "failure.\n"
    "Answer with exactly this JSON object:\n"
    '{"failure": <true|false>, "confidence": <number from 0 to 1>, '
    '"kind": <one of ' + ", ".join(f'"{k}"' for k in KINDS) + '>, "description": <one short sentence>}\n'
    'Use "kind": "none" when there is no failure.'
)

_FENCE = re.compile(r"^```(?:json|JSON)?\s*\n?(?P<body>.*?)\n?\s*```$", re.DOTALL)
MAX_REPLY_CHARS = 4000


class CloudVerdict(BaseModel):
    """A validated verdict. ``confidence`` is the model's own estimate, 0 (guess) to 1 (certain)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    failure: bool
    confidence: float = Field(ge=0.0, le=1.0)
    kind: str
    description: str = Field(max_length=500)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"must be one of {', '.join(KINDS)}")
        return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_verdict(text: str) -> CloudVerdict:
    """The verdict in ``text``, or :class:`CloudReplyError` saying what was wrong (never the text itself
    beyond a short excerpt, so a chatty model cannot flood the log)."""
    if len(text) > MAX_REPLY_CHARS:
        raise CloudReplyError(f"reply too long ({len(text)} characters)")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group("body").strip()
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        raise CloudReplyError(f"reply is not JSON ({exc.__class__.__name__}): {body[:80]!r}") from None
    if not isinstance(data, dict):
        raise CloudReplyError(f"reply is JSON but not an object: {type(data).__name__}")
    confidence = data.get("confidence")
    if isinstance(confidence, float) and not math.isfinite(confidence):
        raise CloudReplyError("confidence is not a finite number")
    try:
        return CloudVerdict.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in exc.errors())
        raise CloudReplyError(f"reply is not a valid verdict: {problems}") from None
