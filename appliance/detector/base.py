"""What a detector returns, and the interface every detector implements.

A detector turns one BGR frame into a :class:`Detection`: a failure score in [0, 1], a
:class:`Verdict` (``ok``, ``failure`` or ``uncertain`` when the score sits in the band around the
threshold) and, where the model can tell, *where* in the frame the evidence is (a patch heatmap
and/or boxes in normalised coordinates).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass

import numpy as np

from appliance.detector.learner import FrameFeatures


class Verdict(enum.StrEnum):
    OK = "ok"
    FAILURE = "failure"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class EvidenceBox:
    """A region of the frame, normalised to [0, 1] with the origin at the top left."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float


@dataclass(frozen=True)
class Detection:
    """The detector's answer for one frame.

    ``heatmap`` is a (rows, cols) float32 grid in [0, 1] over the frame (row 0 at the top): how much
    each patch looks like a failure. ``latency_ms`` covers preprocessing and inference.
    """

    score: float
    verdict: Verdict
    heatmap: np.ndarray | None = None
    boxes: tuple[EvidenceBox, ...] = ()
    latency_ms: float = 0.0
    #: what the camera's learner read of the frame (features, prior logit), so an answer about this frame
    #: can be learned from without the frame; None for detectors without a learner
    features: FrameFeatures | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "score": round(self.score, 4),
            "decision": self.verdict.value,
            "latency_ms": round(self.latency_ms, 2),
            "boxes": [[round(v, 4) for v in (b.x0, b.y0, b.x1, b.y1, b.score)] for b in self.boxes],
        }


def verdict_for(score: float, threshold: float, band: float) -> Verdict:
    """``uncertain`` inside ``[threshold - band, threshold + band)``, else ok/failure by threshold."""
    if band > 0 and threshold - band <= score < threshold + band:
        return Verdict.UNCERTAIN
    return Verdict.FAILURE if score >= threshold else Verdict.OK


class Detector(abc.ABC):
    """Scores frames. Implementations load and warm their model in ``__init__``."""

    #: which runtime and precision actually runs, e.g. "onnxruntime/int8"
    backend_name: str = "abstract"
    #: (width, height) the model wants; sources may deliver frames of that size directly
    input_size: tuple[int, int] = (224, 224)

    @abc.abstractmethod
    def analyse(self, image_bgr: np.ndarray) -> Detection:
        """Score one BGR uint8 frame of any size."""
