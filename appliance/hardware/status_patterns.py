"""What the status light shows for each state, and which state wins when cameras disagree.

A pattern is a colour (red, green, blue; each 0 or 1, so it also works without PWM) and a blink
rhythm: ``on_s`` seconds lit, ``off_s`` seconds dark, repeated; ``off_s == 0`` is steady light. A
single LED shows only the rhythm, so every state has a rhythm of its own:

============== ======== =============================== ======================================
state          colour   rhythm (on / off seconds)       meaning
============== ======== =============================== ======================================
starting       blue     0.5 / 0.5                       model loading, cameras connecting
watching       green    steady                          all well
suspect        yellow   0.25 / 0.25                     a failure vote: verifying
failure        red      0.1 / 0.1                       confirmed failure, not acknowledged
cooldown       yellow   1.0 / 1.0                       acknowledged; no new alert for a while
camera_offline magenta  0.1 / 1.9 (short flash)         a camera delivers no frames
paused         cyan     1.9 / 0.1 (short gap)           monitoring switched off
error          red      0.1 / 0.4                       the analysis loop delivers nothing
storage        red      0.7 / 0.3                       state folder not writable (disk full)
============== ======== =============================== ======================================

With several cameras the light shows the most urgent state (:data:`PRIORITY`). This module does not
import gpiozero: :func:`show` drives any object with gpiozero's ``LED``/``RGBLED`` methods.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance.decision import CameraState

logger = logging.getLogger(__name__)

ERROR = "error"  # not a camera state: the board sink's own verdict on a silent analysis loop
STORAGE = "storage"  # not a camera state: writes under the state folder fail (issue 14, defect 3)

Colour = tuple[float, float, float]
RED: Colour = (1, 0, 0)
GREEN: Colour = (0, 1, 0)
BLUE: Colour = (0, 0, 1)
YELLOW: Colour = (1, 1, 0)
MAGENTA: Colour = (1, 0, 1)
CYAN: Colour = (0, 1, 1)


@dataclass(frozen=True)
class Pattern:
    colour: Colour
    on_s: float
    off_s: float = 0.0

    @property
    def steady(self) -> bool:
        return self.off_s == 0


PATTERNS: dict[str, Pattern] = {
    CameraState.STARTING.value: Pattern(BLUE, 0.5, 0.5),
    CameraState.WATCHING.value: Pattern(GREEN, 1.0),
    CameraState.SUSPECT.value: Pattern(YELLOW, 0.25, 0.25),
    CameraState.FAILURE.value: Pattern(RED, 0.1, 0.1),
    CameraState.COOLDOWN.value: Pattern(YELLOW, 1.0, 1.0),
    CameraState.CAMERA_OFFLINE.value: Pattern(MAGENTA, 0.1, 1.9),
    CameraState.PAUSED.value: Pattern(CYAN, 1.9, 0.1),
    ERROR: Pattern(RED, 0.1, 0.4),
    STORAGE: Pattern(RED, 0.7, 0.3),
}

#: most urgent first: with two cameras the light shows the first state either of them is in
PRIORITY: tuple[str, ...] = (
    CameraState.FAILURE.value,
    ERROR,
    STORAGE,
    CameraState.SUSPECT.value,
    CameraState.CAMERA_OFFLINE.value,
    CameraState.COOLDOWN.value,
    CameraState.STARTING.value,
    CameraState.PAUSED.value,
    CameraState.WATCHING.value,
)


def most_urgent(states: Iterable[str]) -> str:
    """The state the light should show for these per-camera states (``starting`` for none)."""
    present = set(states)
    for state in PRIORITY:
        if state in present:
            return state
    return CameraState.STARTING.value


def show(led: Any, pattern: Pattern, rgb: bool) -> None:
    """Drive a gpiozero ``LED`` (``rgb`` False) or ``RGBLED`` with ``pattern``; blinking runs on
    gpiozero's own background thread."""
    if rgb:
        if pattern.steady:
            led.color = pattern.colour
        else:
            led.blink(on_time=pattern.on_s, off_time=pattern.off_s, on_color=pattern.colour)
    elif pattern.steady:
        led.on()
    else:
        led.blink(on_time=pattern.on_s, off_time=pattern.off_s)
