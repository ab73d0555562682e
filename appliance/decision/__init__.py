"""Decision: sliding-window vote, verification burst, cooldown and the camera state machine."""

from appliance.decision.engine import Alert, CameraState, DecisionEngine, Transition

__all__ = ["Alert", "CameraState", "DecisionEngine", "Transition"]
