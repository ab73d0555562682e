"""``[detector]`` with ``type = "yolo"``: a YOLO box model (YOLOv5 / YOLOv8 / YOLO11 export) as the detector.

The same table, without ``type``, is also the prototype detector's ``[detector.second_opinion]``: the box
model then runs only on the frames the prototype model finds suspect, with one more key, ``role``
(:class:`SecondOpinionConfig`, :class:`appliance.detector.plugins.TwoStageDetector`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from appliance.config.base import StrictModel


class YoloDetectorConfig(StrictModel):
    """A YOLO-format detector: the failure score is the highest confidence of a failure-class box."""

    type: Literal["yolo"] = Field(
        "yolo", description="A YOLO box model: .onnx (ONNX Runtime) or .tflite (LiteRT), int8 or float."
    )
    model: Path | None = Field(
        None,
        description="The export (.onnx or .tflite); default: the shipped box model "
        "models/layerwatch-boxes-int8.onnx.",
    )
    failure_classes: list[str | int] = Field(
        default=["failure"],
        description="Which classes are failures: names from the export's metadata (e.g. 'spaghetti') or "
        "class indices; a name the model does not have is an error.",
    )
    class_names: list[str] | None = Field(
        None,
        description="Class names in index order, for exports without a 'names' entry in their metadata.",
    )
    input_size: tuple[int, int] | None = Field(
        None,
        description="Model input (width, height) in pixels, for exports with a dynamic input shape and "
        "no 'imgsz' metadata.",
    )
    layout: Literal["auto", "v8", "v5", "end2end"] = Field(
        "auto",
        description="Output layout: v8 = (1, 4+classes, N) (YOLOv8/YOLO11), v5 = (1, N, 5+classes), "
        "end2end = (1, N, 6) x0 y0 x1 y1 score class (NMS in the graph); auto reads it from the shapes "
        "and metadata.",
    )
    confidence: float = Field(
        0.25, ge=0, le=1, description="Boxes under this confidence are dropped before NMS."
    )
    iou: float = Field(0.45, ge=0, le=1, description="NMS IoU threshold (cv2.dnn.NMSBoxes).")
    max_boxes: int = Field(8, ge=1, le=100, description="Failure boxes kept per frame (evidence).")
    threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A frame is a failure when its top failure-box confidence reaches this (raised per "
        "camera by its calibration floor).",
    )
    uncertain_band: float = Field(
        0.1, ge=0, le=0.5, description="Half-width of the confidence band around the threshold: uncertain."
    )
    floor_margin: float = Field(
        0.05,
        ge=0,
        le=0.5,
        description="The camera's threshold is at least its normal calibration frames' top failure-box "
        "confidence plus this.",
    )
    ignore_iou: float = Field(
        0.5,
        ge=0.05,
        le=1,
        description="A box overlapping a 'false alarm' box of this camera by this IoU or more is ignored.",
    )
    backend: Literal["auto", "onnx", "litert"] = Field(
        "auto", description="Runtime; auto takes it from the file suffix."
    )
    threads: int = Field(1, ge=1, le=8, description="CPU threads for inference.")


class SecondOpinionConfig(YoloDetectorConfig):
    """``[detector.second_opinion]``: the box model on the frames the prototype model finds suspect."""

    role: Literal["boxes", "decides"] = Field(
        "boxes",
        description="boxes: the prototype model's verdict stands and the box model adds its boxes to the "
        "evidence; decides: the box model's verdict replaces it on suspect frames (only for a camera "
        "whose failures are all spaghetti-like: measured, it vetoes other failure kinds).",
    )


def detector_kind(value: object) -> str:
    """The ``[detector]`` table's plugin: ``yolo`` when ``type = "yolo"``, else the prototype detector
    (whose ``type`` names a backend and may be left out)."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "yolo" if kind == "yolo" else "prototype"
