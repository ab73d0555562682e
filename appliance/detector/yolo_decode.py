"""YOLO export formats: which output layout a model has, its class names, and decoding + NMS.

Layouts (``N`` candidate boxes, ``C`` classes; coordinates in input pixels, or normalised to 0..1 as
Ultralytics' TFLite exports write them, which :func:`decode` detects):

* ``v8`` (YOLOv8 / YOLO11): one output (1, 4 + C, N): box centre x, y, width, height, then C class scores;
* ``v5`` (YOLOv5): (1, N, 5 + C): centre x, y, width, height, objectness, C class scores (confidence =
  objectness x class score);
* ``end2end`` (NMS inside the graph: Ultralytics ``nms=True`` / YOLOv10 / YOLO26): (1, N, 6):
  x0, y0, x1, y1, score, class.

Metadata as Ultralytics writes it: ONNX ``metadata_props`` ``names`` = ``"{0: 'fail', 1: 'ok'}"``,
``imgsz`` = ``"[640, 640]"`` (height, width), ``stride``, ``end2end``/``nms``; TFLite: the same keys in
a ``metadata.json`` inside a zip appended to the flatbuffer.
"""

from __future__ import annotations

import ast
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.errors import ModelFormatError

LAYOUTS = ("v8", "v5", "end2end")
END2END_MAX_BOXES = 1000  # an end-to-end export keeps at most max_det (default 300) boxes


@dataclass(frozen=True)
class YoloLayout:
    kind: str  # v8 | v5 | end2end
    classes: int  # C (0 when an end2end export does not say)
    output: int  # which model output holds the boxes


def read_metadata(path: Path, embedded: dict[str, str]) -> dict[str, object]:
    """The export's metadata: ONNX custom metadata (``embedded``) or a TFLite file's appended
    ``metadata.json``; values parsed (``names`` as {index: name}, ``imgsz`` as a list)."""
    raw: dict[str, object] = dict(embedded)
    if not raw and path.suffix == ".tflite" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "metadata.json" in archive.namelist():
                raw = json.loads(archive.read("metadata.json"))
    out: dict[str, object] = {}
    for key, value in raw.items():
        if isinstance(value, str) and key in ("names", "imgsz", "stride", "end2end", "nms", "args"):
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                if key in ("names", "imgsz"):
                    raise ModelFormatError(
                        f"{path}: metadata {key!r} is not readable: {value[:80]!r}"
                    ) from None
        out[key] = value
    if "names" in out:
        names = out["names"]
        if isinstance(names, list):
            names = dict(enumerate(names))
        if not isinstance(names, dict):
            raise ModelFormatError(f"{path}: metadata 'names' is not a dict of index: name")
        out["names"] = {int(k): str(v) for k, v in names.items()}
    return out


def _end2end_flag(metadata: dict[str, object]) -> bool:
    args = metadata.get("args")
    nested = isinstance(args, dict) and bool(args.get("nms"))
    return bool(metadata.get("end2end")) or bool(metadata.get("nms")) or nested


def detect_layout(
    shapes: list[tuple[int, ...]], classes: int | None, metadata: dict[str, object], forced: str = "auto"
) -> YoloLayout:
    """Which output and layout hold the boxes. ``classes`` is C when the class names are known.
    A dynamic axis is -1. Refuses (:class:`ModelFormatError`) shapes no layout explains."""
    problems = []
    for index, shape in enumerate(shapes):
        if len(shape) != 3 or shape[0] not in (1, -1):
            problems.append(f"output {index} {shape}: not (1, a, b)")
            continue
        a, b = shape[1], shape[2]
        e2e = forced in ("auto", "end2end") and b == 6
        if e2e and (forced == "end2end" or _end2end_flag(metadata)):
            return YoloLayout("end2end", classes or 0, index)
        # N (the candidate boxes) is the longer axis in every real export
        if forced in ("auto", "v8") and a > 4 and (b == -1 or b > a) and classes in (None, a - 4):
            return YoloLayout("v8", a - 4, index)
        if forced in ("auto", "v5") and b > 5 and (a == -1 or a > b) and classes in (None, b - 5):
            return YoloLayout("v5", b - 5, index)
        if e2e and a != -1 and a <= END2END_MAX_BOXES:
            return YoloLayout("end2end", classes or 0, index)
        problems.append(f"output {index} {shape}")
    expected = f" with {classes} class names" if classes else ""
    wanted = {"auto": "any YOLO layout", "v8": "layout v8", "v5": "layout v5", "end2end": "layout end2end"}
    raise ModelFormatError(
        f"model outputs {'; '.join(problems) or 'none'} match {wanted[forced]}{expected}: expected "
        "(1, 4+classes, N) (YOLOv8/YOLO11), (1, N, 5+classes) (YOLOv5) or (1, N, 6) (NMS in the graph). "
        "Segmentation, pose and classification exports are not detectors; set detector.layout or "
        "detector.class_names if the export is one of these"
    )


@dataclass(frozen=True)
class Boxes:
    """Boxes after NMS, best first: ``xyxy`` (M, 4) in canvas pixels, ``scores`` (M,), ``classes`` (M,)."""

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @staticmethod
    def empty() -> Boxes:
        return Boxes(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def _candidates(out: np.ndarray, layout: YoloLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyxy (N, 4), score (N,), class (N,)) of every candidate of one image's output."""
    if layout.kind == "end2end":
        return out[:, :4], out[:, 4], out[:, 5].astype(np.int64)
    if layout.kind == "v8":
        rows = out.T  # (N, 4 + C)
        class_scores = rows[:, 4:]
    else:
        rows = out
        class_scores = rows[:, 5:] * rows[:, 4:5]
    classes = class_scores.argmax(1)
    scores = class_scores[np.arange(len(rows)), classes]
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return xyxy, scores, classes


def decode(
    output: np.ndarray,
    layout: YoloLayout,
    canvas: tuple[int, int],
    confidence: float,
    iou: float,
    max_boxes: int = 100,
) -> Boxes:
    """One model output (batch of 1) -> boxes over ``confidence`` after per-class NMS (OpenCV's
    ``cv2.dnn.NMSBoxesBatched``; an end2end export's boxes are already suppressed). ``canvas`` is the
    input (width, height); normalised coordinates (all within 0..2) are scaled to it."""
    xyxy, scores, classes = _candidates(np.asarray(output, np.float32)[0], layout)
    keep = scores >= confidence
    xyxy, scores, classes = xyxy[keep], scores[keep], classes[keep]
    if not len(scores):
        return Boxes.empty()
    if np.abs(xyxy).max() <= 2.0:
        xyxy = xyxy * np.array([canvas[0], canvas[1], canvas[0], canvas[1]], np.float32)
    if layout.kind != "end2end":
        rects = [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in xyxy]
        picked = cv2.dnn.NMSBoxesBatched(rects, scores.tolist(), classes.tolist(), confidence, iou)
        index = np.asarray(picked, np.int64).reshape(-1)
    else:
        index = np.arange(len(scores))
    index = index[np.argsort(-scores[index], kind="stable")][:max_boxes]
    return Boxes(xyxy[index].astype(np.float32), scores[index].astype(np.float32), classes[index])


def failure_class_ids(
    wanted: list[str | int], names: dict[int, str] | None, classes: int, model: str
) -> list[int]:
    """Configured failure classes (names or indices) -> class indices; a clear error for any the model
    lacks (names need the export's ``names`` metadata or ``detector.class_names``)."""
    out = []
    for item in wanted:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            index = int(item)
            if classes and not 0 <= index < classes:
                raise ModelFormatError(f"{model}: failure class {index} is out of range (0-{classes - 1})")
            out.append(index)
            continue
        if not names:
            raise ModelFormatError(
                f"{model}: failure class {item!r} is a name, but the export has no 'names' metadata; "
                "set detector.class_names or give the class index"
            )
        by_name = {v.lower(): k for k, v in names.items()}
        if item.lower() not in by_name:
            raise ModelFormatError(
                f"{model}: no class named {item!r}; the model's classes are {sorted(names.values())}"
            )
        out.append(by_name[item.lower()])
    return out
