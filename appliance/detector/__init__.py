"""The detector: frame in, failure score, verdict and evidence out."""

from appliance.detector.base import Detection, Detector, EvidenceBox, Verdict, verdict_for
from appliance.detector.calibration import CameraCalibration, load_calibration, save_calibration
from appliance.detector.prototype_detector import PrototypeDetector, build_calibration, load_detector

__all__ = [
    "CameraCalibration",
    "Detection",
    "Detector",
    "EvidenceBox",
    "PrototypeDetector",
    "Verdict",
    "build_calibration",
    "load_calibration",
    "load_detector",
    "save_calibration",
    "verdict_for",
]
