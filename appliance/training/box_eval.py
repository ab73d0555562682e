"""Box-model figures for the model card: mAP50 on held-out sources and latency per frame.

``python -m appliance.training.box_eval --model models/layerwatch-boxes-int8.onnx
--sources web_roboflow_3dprinting`` runs the appliance's own ``yolo`` detector
(:class:`appliance.detector.yolo_detector.YoloDetector`: letterbox, decode, NMS) on every photo of the
sources that has failure boxes (:func:`appliance.training.data.failure_boxes`), at confidence 0.001 and
NMS IoU 0.6 as mAP is usually measured, and prints one JSON line: AP at IoU 0.5 (all-point interpolated
precision-recall area, one class), recall and precision at confidence 0.25, and the median ms per frame
of :meth:`YoloDetector.boxes` on ``--threads`` cores (preprocessing, inference, decode and NMS).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from appliance.config.yolo import YoloDetectorConfig
from appliance.detector.yolo_detector import YoloDetector, box_iou
from appliance.training.data import DEFAULT_DATA, failure_boxes, read_manifest


def average_precision(
    detections: list[tuple[int, float, np.ndarray]], truths: dict[int, np.ndarray], iou: float = 0.5
) -> tuple[float, np.ndarray, np.ndarray]:
    """AP of (image, score, box) detections against per-image truth boxes (x0, y0, x1, y1); a truth box
    matches at most one detection (the best-scoring). Returns (AP, precision, recall) curves."""
    total = sum(len(t) for t in truths.values())
    used = {k: np.zeros(len(v), bool) for k, v in truths.items()}
    order = sorted(detections, key=lambda d: -d[1])
    hits = np.zeros(len(order))
    for n, (image, _, box) in enumerate(order):
        gt = truths.get(image, np.zeros((0, 4)))
        if not len(gt):
            continue
        overlap = box_iou(box[None], gt)[0]
        overlap[used[image]] = 0
        best = int(overlap.argmax())
        if overlap[best] >= iou:
            used[image][best] = True
            hits[n] = 1
    tp = np.cumsum(hits)
    recall = tp / max(total, 1)
    precision = tp / np.arange(1, len(order) + 1)
    # all-point interpolation: the area under the precision envelope
    envelope = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(envelope) - 2, -1, -1):
        envelope[i] = max(envelope[i], envelope[i + 1])
    steps = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    ap = float(np.sum((steps[1:] - steps[:-1]) * envelope[1:]))
    return ap, precision, recall


def evaluate(model: Path, sources: list[str], threads: int = 1, data_dir: Path = DEFAULT_DATA) -> dict:
    config = YoloDetectorConfig(model=model, confidence=0.001, iou=0.6, max_boxes=100, threads=threads)
    detector = YoloDetector(config, model)
    detections: list[tuple[int, float, np.ndarray]] = []
    truths: dict[int, np.ndarray] = {}
    times = []
    samples = [s for s in read_manifest(data_dir) if s.source in sources and failure_boxes(s)]
    for n, sample in enumerate(samples):
        image = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        truths[n] = np.array(failure_boxes(sample), np.float32)
        start = time.perf_counter()
        rows = detector.boxes(image)
        times.append((time.perf_counter() - start) * 1000)
        detections += [(n, float(r[4]), r[:4]) for r in rows]
    ap, precision, recall = average_precision(detections, truths)
    scores = np.array(sorted((d[1] for d in detections), reverse=True))
    at = int(np.sum(scores >= 0.25))
    return {
        "model": model.name,
        "backend": detector.backend_name,
        "sources": sources,
        "images": len(truths),
        "boxes": int(sum(len(t) for t in truths.values())),
        "map50": round(ap, 4),
        "recall_at_0.25": round(float(recall[at - 1]), 4) if at else 0.0,
        "precision_at_0.25": round(float(precision[at - 1]), 4) if at else None,
        "ms_per_frame_median": round(float(np.median(times)), 2),
        "ms_per_frame_p95": round(float(np.percentile(times, 95)), 2),
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--sources", nargs="+", default=["web_roboflow_3dprinting"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(evaluate(args.model, args.sources, args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
