"""Typed configuration: the pydantic tree (:mod:`.model`) and how it is loaded (:mod:`.loader`)."""

from appliance.config.loader import EX_CONFIG, load_config
from appliance.config.model import (
    CameraConfig,
    DecisionConfig,
    DetectorConfig,
    LayerwatchConfig,
    MqttConfig,
    ServiceConfig,
)

__all__ = [
    "EX_CONFIG",
    "CameraConfig",
    "DecisionConfig",
    "DetectorConfig",
    "LayerwatchConfig",
    "MqttConfig",
    "ServiceConfig",
    "load_config",
]
