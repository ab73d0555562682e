"""Commands over MQTT: ``<prefix>/<device_id>[/<camera>]/<command>/set``.

Without a camera the command applies to every camera. Payloads (case-insensitive, at most
``MAX_PAYLOAD_BYTES``):

============  ==========================  ===========================================
command       payload                     effect
============  ==========================  ===========================================
acknowledge   ``PRESS`` or empty          silence the alert, cancel the printer countdown
silence       ``PRESS`` or empty          same as acknowledge
monitoring    ``ON`` / ``OFF``            resume / pause monitoring (the HA switch)
pause         ``PRESS`` or empty          pause monitoring (state ``paused``)
resume        ``PRESS`` or empty          resume monitoring
test_alarm    ``PRESS`` or empty          sound every alarm output, send a test message
relay         ``ON`` / ``OFF``            switch the relay
recalibrate   ``PRESS`` or empty          capture calibration frames now
pause_print   ``PRESS`` or empty          ask the linked printer to pause now
false_alarm   ``PRESS``, empty or alert   the alert (default: the newest) was no failure:
              id                          its frames become normal examples; silences it
real_failure  ``PRESS``, empty or alert   the alert was a real failure: its frames become
              id                          failure examples
label         ``<frame id> ok|failure``   label any recent frame (ids in the state JSON)
withdraw      ``<answer or frame id>``    take an answer back
============  ==========================  ===========================================

``ON``/``OFF`` also accept ``true``/``false`` and ``1``/``0``. Anything else raises
:class:`~appliance.errors.CommandRejectedError` with the reason; the MQTT notifier logs it and
publishes an error event, and nothing else happens.
"""

from __future__ import annotations

import re

from appliance.errors import CommandRejectedError
from appliance.service.commands import Command, CommandKind

MAX_PAYLOAD_BYTES = 64
PRESS_WORDS = {"", "press", "pressed"}
ON_WORDS = {"on", "true", "1"}
OFF_WORDS = {"off", "false", "0"}

# command word -> (kind, payload style); monitoring maps ON/OFF to RESUME/PAUSE
COMMANDS: dict[str, tuple[CommandKind | None, str]] = {
    "acknowledge": (CommandKind.ACKNOWLEDGE, "press"),
    "silence": (CommandKind.ACKNOWLEDGE, "press"),
    "monitoring": (None, "switch"),
    "pause": (CommandKind.PAUSE, "press"),
    "resume": (CommandKind.RESUME, "press"),
    "test_alarm": (CommandKind.TEST_ALARM, "press"),
    "relay": (CommandKind.RELAY, "switch"),
    "recalibrate": (CommandKind.RECALIBRATE, "press"),
    "pause_print": (CommandKind.PAUSE_PRINT, "press"),
    "skip_print": (CommandKind.SKIP_PRINT, "press"),  # don't watch this print (until it ends)
    "false_alarm": (CommandKind.ANSWER, "alert"),
    "real_failure": (CommandKind.ANSWER, "alert"),
    "label": (CommandKind.ANSWER, "label"),
    "withdraw": (CommandKind.WITHDRAW, "id"),
}
_ID = re.compile(r"^[0-9a-z][0-9a-z_-]{0,47}$")


def command_topics(base: str) -> list[str]:
    """The subscriptions that catch every command topic under ``base``.

    The first two are the valid shapes; the third catches every topic four or more levels deep
    (``P/printer/acknowledge/extra/set``), so a malformed command is rejected and reported instead
    of silently ignored. None of them overlaps another, and none matches what the appliance itself
    publishes under ``base`` (at most two levels: ``P/<camera>/state``), so nothing arrives twice.
    """
    return [f"{base}/+/set", f"{base}/+/+/set", f"{base}/+/+/+/+/#"]


def _switch(word: str) -> bool:
    if word in ON_WORDS:
        return True
    if word in OFF_WORDS:
        return False
    raise CommandRejectedError(f"payload must be ON or OFF, got {word[:20]!r}")


def parse_command(base: str, topic: str, payload: bytes, cameras: list[str]) -> Command:
    """The :class:`Command` for one ``.../set`` message, or :class:`CommandRejectedError`."""
    if not topic.startswith(base + "/") or not topic.endswith("/set"):
        raise CommandRejectedError("not a command topic")
    parts = topic[len(base) + 1 : -len("/set")].split("/")
    camera: str | None = None
    if len(parts) == 2:
        camera, word = parts
        if camera not in cameras:
            raise CommandRejectedError(f"unknown camera {camera[:32]!r} (known: {', '.join(cameras)})")
    elif len(parts) == 1:
        word = parts[0]
    else:
        raise CommandRejectedError("topic must be <base>[/<camera>]/<command>/set")
    if word not in COMMANDS:
        raise CommandRejectedError(f"unknown command {word[:32]!r} (known: {', '.join(COMMANDS)})")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandRejectedError(f"payload of {len(payload)} bytes is too long (max {MAX_PAYLOAD_BYTES})")
    try:
        text = payload.decode("utf-8").strip().lower()
    except UnicodeDecodeError:
        raise CommandRejectedError("payload is not UTF-8 text") from None
    kind, style = COMMANDS[word]
    if style in ("alert", "label", "id"):
        return _answer_command(word, text, camera)
    if style == "press":
        if text not in PRESS_WORDS:
            raise CommandRejectedError(f"{word} takes PRESS or an empty payload, got {text[:20]!r}")
        assert kind is not None
        return Command(kind, camera=camera, origin="mqtt")
    on = _switch(text)
    if kind is None:  # monitoring
        return Command(CommandKind.RESUME if on else CommandKind.PAUSE, camera=camera, origin="mqtt")
    return Command(kind, camera=camera, value=on, origin="mqtt")


def _answer_command(word: str, text: str, camera: str | None) -> Command:
    """``false_alarm``/``real_failure`` [alert id], ``label <frame id> ok|failure``, ``withdraw <id>``."""
    if word == "withdraw":
        if not _ID.match(text):
            raise CommandRejectedError("withdraw takes an answer id or a frame id")
        return Command(CommandKind.WITHDRAW, camera=camera, value=text, origin="mqtt")
    if word == "label":
        parts = text.split()
        if len(parts) != 2 or not _ID.match(parts[0]) or parts[1] not in ("ok", "failure"):
            raise CommandRejectedError("label takes '<frame id> ok' or '<frame id> failure'")
        value = {"label": parts[1], "frame": parts[0], "alert": None}
        return Command(CommandKind.ANSWER, camera=camera, value=value, origin="mqtt")
    alert = None if text in PRESS_WORDS else text
    if alert is not None and not _ID.match(alert):
        raise CommandRejectedError(f"{word} takes PRESS, an empty payload or an alert id")
    label = "ok" if word == "false_alarm" else "failure"
    return Command(CommandKind.ANSWER, camera=camera, value={"label": label, "alert": alert, "frame": None},
                   origin="mqtt")  # fmt: skip
