"""Which scored test frames teach the camera's learner in ``layerwatch eval``, and when.

Three protocols (``--feedback``):

- none (static): no test frame is ever labelled; the camera knows only its calibration rows.
- ``asked``: a frame is labelled only if the appliance would have asked about it (:func:`asks`) - the
  protocol of a camera that learns from the answers it actually gets.
- ``all`` (the capacity protocol): every test frame is labelled - the most any ask policy could give the
  learner, so it measures how much the camera can learn apart from how often it asks.

In every protocol a frame's label is given only *after* the frame was scored (and after its vote reached
the decision engine), in the CSV's (time) order: a label never helps score its own frame.
"""

from __future__ import annotations

from typing import Any, Literal

from appliance.detector import Detection, Verdict
from appliance.detector.ask_policy import AskPolicy, logit_of

FeedbackMode = Literal["asked", "all"]
FEEDBACK_MODES: tuple[FeedbackMode, ...] = ("asked", "all")


def feedback_mode(value: bool | str | None) -> FeedbackMode | None:
    """Normalise ``run_eval``'s ``feedback`` argument: ``True`` (the older callers) is ``"asked"``,
    ``False``/``None``/``"off"`` none."""
    if value is None or value is False or value in ("", "off", "none", "static"):
        return None
    if value is True or value == "asked":
        return "asked"
    if value == "all":
        return "all"
    raise ValueError(f"feedback must be one of {FEEDBACK_MODES} (or a bool), got {value!r}")


def asks(detection: Detection, scoring: Any, policy: AskPolicy | None = None, now: float = 0.0) -> bool:
    """Would the appliance ask about this frame? The service's rule (:class:`CameraPipeline`): a
    ``failure`` verdict is answered through its alert, an ``uncertain`` one goes to the judge, and a frame
    the learner is unsure of is asked about when the camera's question budget allows
    (:mod:`appliance.detector.ask_policy`; ``policy`` None: no such questions). ``now``: the row's time in
    seconds. Called for every scored frame, so the budget's credit follows the stream.

    ``scoring`` is the camera's scoring state (learner, threshold, band) the frame was scored with. This is
    the one place the evaluation decides what is asked."""
    learns = False
    if policy is not None and detection.features is not None:
        relative = logit_of(detection.score) - logit_of(scoring.threshold)
        learns = policy.asks(relative, sum(scoring.learner.counts().values()), now)
    return detection.verdict is not Verdict.OK or learns


def is_answered(
    mode: FeedbackMode | None,
    detection: Detection,
    scoring: Any,
    policy: AskPolicy | None = None,
    now: float = 0.0,
) -> bool:
    """Whether the frame's label is given to the learner (after scoring) under protocol ``mode``."""
    if mode == "all":
        return True
    return mode == "asked" and asks(detection, scoring, policy, now)


def protocol_name(mode: FeedbackMode | None) -> str:
    """The ``protocol`` value of the JSON: ``static``, ``feedback`` (asked; the name older runs used)
    or ``capacity`` (all)."""
    return {None: "static", "asked": "feedback", "all": "capacity"}[mode]
