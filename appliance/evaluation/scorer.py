"""The evaluation's seam to the detector: one camera calibrated, its frames scored, its answers learned.

:class:`DetectorScorer` drives the appliance's own detector exactly as the service does: the calibrate rows
go through :func:`appliance.detector.build_calibration`, each test frame through ``detector.analyse`` with
the camera's scoring (learner, threshold, uncertain band), and an answer becomes an
:class:`appliance.detector.camera_learner.Answer` with ``source = "user"`` (the frame's features, refit at
once), as :class:`appliance.service.camera_answers.CameraAnswers` gives the user's.

Anything with the same methods (:class:`CameraScorer`) can stand in: the tests use stubs with exact scores.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from appliance.detector import AnyDetector, Detection, build_calibration
from appliance.detector.camera_learner import Answer

logger = logging.getLogger(__name__)


class CameraScorer(Protocol):
    """One camera at a time: :meth:`calibrate`, then :meth:`analyse` and :meth:`teach` in stream order."""

    backend_name: str

    def calibrate(
        self, camera: str, ok_frames: list[np.ndarray], failure_frames: list[np.ndarray]
    ) -> None: ...

    def analyse(self, image: np.ndarray) -> Detection: ...

    def teach(self, label: str, detection: Detection, frame_id: str) -> float | None:
        """Give the learner the frame's label; the refit's milliseconds, or None if it cannot learn."""
        ...

    @property
    def scoring(self) -> Any: ...

    @property
    def threshold(self) -> float: ...

    @property
    def band(self) -> float: ...

    def summary(self) -> dict[str, Any]: ...


class DetectorScorer:
    """A :class:`CameraScorer` over the appliance's detector (prototype, yolo or two-stage)."""

    def __init__(self, detector: AnyDetector):
        self.detector = detector
        self.backend_name: str = detector.backend_name
        self._scoring: Any = detector.default_scoring

    def calibrate(self, camera: str, ok_frames: list[np.ndarray], failure_frames: list[np.ndarray]) -> None:
        if ok_frames:
            calibration = build_calibration(self.detector, camera, ok_frames, failure_frames)  # type: ignore[arg-type]
            self.detector.set_calibration(calibration)
        else:
            logger.warning("camera %s has no normal calibration frames: using the uncalibrated model", camera)
            self.detector.set_calibration(None)
        self._scoring = self.detector.default_scoring

    def analyse(self, image: np.ndarray) -> Detection:
        return self.detector.analyse(image, self._scoring)  # type: ignore[call-arg]

    def teach(self, label: str, detection: Detection, frame_id: str) -> float | None:
        features = detection.features
        if features is None:
            return None
        self._scoring.learner.add(Answer(label, "user", features.phi, features.s0, frame_id=frame_id))
        return float(self._scoring.learner.model.refit_ms)

    @property
    def scoring(self) -> Any:
        return self._scoring

    @property
    def threshold(self) -> float:
        return float(self._scoring.threshold)

    @property
    def band(self) -> float:
        return float(self._scoring.band)

    def summary(self) -> dict[str, Any]:
        return dict(self._scoring.learner.summary())

    def reset(self) -> None:
        """Forget the last camera's calibration (between runs)."""
        self.detector.set_calibration(None)
        self._scoring = self.detector.default_scoring
