"""What may enter an outbox, and which delivery errors are final.

An outbox entry is a :class:`~appliance.actions.dispatcher.Notification` written as JSON; a file can be
damaged, hand-edited or written by an older version, so its shape is checked when it is queued
(:meth:`~appliance.actions.outbox.Outbox.put` refuses it) and again when it is read back (a bad file is
set aside). Issue 33 found entries whose top-level shape was right but whose content could never be
sent (``"fields": {"score": "high"}`` for Discord and Telegram, a camera name with ``#`` for an MQTT
topic): they were retried at the head of their queue until they expired, 24 hours later.

:func:`check_notification` raises ``TypeError``/``ValueError`` for such an entry. :func:`is_final`
sorts a delivery error: the peer's refusal (:class:`~appliance.errors.DeliveryRejectedError`, a 4xx)
and an error in the entry's own content (``ValueError``, ``TypeError``, ``KeyError``, ``UnicodeError``:
an encoding or topic error) will not change on retry; anything else is transient.
"""

from __future__ import annotations

import re
from typing import Any

from appliance.errors import DeliveryError, DeliveryRejectedError

#: a camera name as the configuration allows it (appliance.config.model.CameraConfig.name): safe in an
#: MQTT topic and a folder name
CAMERA_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")  # the key is part of the file name (``<ns>-<key>.json``)
#: fields every channel reads, with what they must be (``None`` is allowed for each)
NUMBER_FIELDS = ("score",)
INTEGER_FIELDS = ("repeat", "votes", "window")
TEXT_FIELDS = ("id", "state", "cloud_verdict", "cause", "video")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


def check_notification(notification: Any) -> None:
    """Raise TypeError or ValueError unless ``notification`` can be sent on every channel."""
    n = notification
    if not all(isinstance(v, str) for v in (n.key, n.kind, n.title, n.description, n.time)):
        raise TypeError("key, kind, title, description and time must be strings")
    if not KEY.match(n.key):
        raise ValueError(f"key {n.key[:40]!r} is not [A-Za-z0-9_.-], 1-128 characters")
    if n.camera is not None and not isinstance(n.camera, str):
        raise TypeError("camera must be a string or null")
    if n.camera is not None and not CAMERA_NAME.match(n.camera):
        raise ValueError(f"camera {n.camera[:40]!r} is not a camera name ([a-z0-9_-])")
    if not _number(n.created):
        raise TypeError(f"created must be a number of seconds, not {n.created!r}")
    if not isinstance(n.fields, dict):
        raise TypeError(f"fields must be an object, not {n.fields!r}")
    for name in NUMBER_FIELDS:
        value = n.fields.get(name)
        if value is not None and not _number(value):
            raise TypeError(f"fields.{name} must be a number, not {str(value)[:20]!r}")
    for name in INTEGER_FIELDS:
        value = n.fields.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"fields.{name} must be a whole number, not {str(value)[:20]!r}")
    for name in TEXT_FIELDS:
        value = n.fields.get(name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"fields.{name} must be text, not {str(value)[:20]!r}")
    if n.image is not None and not isinstance(n.image, bytes):
        raise TypeError("image must be bytes")


def is_final(exc: BaseException) -> bool:
    """True when retrying the same entry cannot succeed (set it aside), False for a transient error."""
    if isinstance(exc, DeliveryRejectedError):
        return True
    if isinstance(exc, DeliveryError):
        return False
    return isinstance(exc, ValueError | TypeError | KeyError | UnicodeError)
