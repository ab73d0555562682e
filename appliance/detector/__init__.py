"""The detector: frame in, failure score, verdict and evidence out."""

from appliance.detector.base import Detection, Detector, EvidenceBox, Verdict, verdict_for
from appliance.detector.calibration import CameraCalibration, load_calibration, save_calibration
from appliance.detector.plugins import AnyDetector, TwoStageDetector, build_calibration, load_detector
from appliance.detector.prototype_detector import PrototypeDetector
from appliance.detector.yolo_detector import YoloDetector

__all__ = [
    "AnyDetector",
    "CameraCalibration",
    "Detection",
    "Detector",
    "EvidenceBox",
    "PrototypeDetector",
    "TwoStageDetector",
    "Verdict",
    "YoloDetector",
    "build_calibration",
    "load_calibration",
    "load_detector",
    "save_calibration",
    "verdict_for",
]
