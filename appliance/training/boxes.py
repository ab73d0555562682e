"""Train and export the box model (``python -m appliance.training.boxes``), no Ultralytics.

Data (``../shared/data``, never copied into the repository): the photos of ``--train-sources`` with their
YOLO failure boxes (:func:`appliance.training.data.failure_boxes`: kapis20 class 1 "spaghetti", Roboflow
class 0 "fail"); every other source is held out (the model card's mAP50 is measured on a held-out source).
Every photo is letterboxed to the square input ``--size`` in ``--views`` versions (as it is, flipped, then
random crops of 70-100 % with boxes clipped to them, a box cut to under half its area dropped, flipped
half the time); the frozen trunk's output of each is cached once (versions after the first only while
caching has taken under 35 % of ``--minutes``), and training steps run only the tail.

Writes into ``--out``: ``layerwatch-boxes-fp32.onnx`` and ``layerwatch-boxes-int8.onnx`` (static QDQ,
calibrated on training photos), both in the YOLOv8 output layout with Ultralytics-style metadata
(``names``, ``imgsz``, ``stride``, ``task``), the LiteRT pair ``layerwatch-boxes-{fp32,int8}.tflite``
(:mod:`appliance.training.box_tflite`), ``boxnet.pt`` (the trained state, for ``--from-checkpoint``;
not shipped) and ``layerwatch-boxes.json`` (the training record).
Training stops after ``--epochs`` or ``--minutes`` of wall clock, whichever comes first; the learning rate
follows a cosine over whichever of the two runs out first (the machine is shared: steps take 2-8 s).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from appliance.detector.letterbox import letterbox
from appliance.training.box_tflite import export_box_tflite, quantize_box_tflite
from appliance.training.boxnet import BoxNet, YoloExport, box_loss
from appliance.training.data import DEFAULT_DATA, failure_boxes, load_rgb, read_manifest
from appliance.training.export import quantize_int8

logger = logging.getLogger(__name__)

CLASS_NAME = "failure"
FP32_FILE = "layerwatch-boxes-fp32.onnx"
INT8_FILE = "layerwatch-boxes-int8.onnx"
TFLITE_FP32_FILE = "layerwatch-boxes-fp32.tflite"
TFLITE_INT8_FILE = "layerwatch-boxes-int8.tflite"
RECORD_FILE = "layerwatch-boxes.json"
TRAIN_SOURCES = ("web_kapis20",)


def load_photos(sources: tuple[str, ...], data_dir: Path = DEFAULT_DATA, max_side: int = 320) -> list:
    """(RGB uint8 photo at most ``max_side`` on its long side, (M, 4) normalised x0, y0, x1, y1) pairs."""
    import cv2

    out = []
    for sample in read_manifest(data_dir):
        if sample.source not in sources:
            continue
        boxes = np.array(failure_boxes(sample), np.float32).reshape(-1, 4)
        rgb = load_rgb(sample.path)
        scale = max_side / max(rgb.shape[:2])
        if scale < 1:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append((rgb, boxes))
    return out


def augment(
    rgb: np.ndarray, boxes: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random crop, flip and letterbox: (canvas (size, size, 3) uint8, (M, 4) boxes in canvas pixels)."""
    h, w = rgb.shape[:2]
    frac = rng.uniform(0.7, 1.0)
    cw, ch = int(w * frac), int(h * frac)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = rgb[y0 : y0 + ch, x0 : x0 + cw]
    b = boxes * [w, h, w, h] - [x0, y0, x0, y0]
    clipped = np.clip(b, 0, [cw, ch, cw, ch])
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    kept = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    clipped = clipped[kept >= 0.5 * np.maximum(area, 1e-6)]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
        clipped = clipped[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [cw, 0, cw, 0]
    canvas, placed = letterbox(np.ascontiguousarray(crop), (size, size))
    norm = clipped / [cw, ch, cw, ch]
    return canvas, placed.from_frame(norm) if len(norm) else np.zeros((0, 4), np.float32)


def to_tensor(canvases: list[np.ndarray]) -> torch.Tensor:
    """uint8 NHWC canvases -> the backbone's normalised float NCHW."""
    from appliance.training.backbone import MEAN, STD

    x = torch.from_numpy(np.stack(canvases)).permute(0, 3, 1, 2).float()
    return (x - MEAN) / STD


def cache_views(
    net: BoxNet, photos: list, views: int, size: int, rng: np.random.Generator, seconds: float
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The frozen trunk's output for up to ``views`` versions of every photo (the photo, flipped, then
    random crops with random flips; float16) and each version's boxes in canvas pixels. Version by version
    over all photos; after the first, caching stops once ``seconds`` have passed (the machine is shared)."""
    features, targets = [], []
    start = time.monotonic()
    for v in range(views):
        if v and time.monotonic() - start > seconds:
            break
        for first in range(0, len(photos), 16):
            batch = []
            for rgb, boxes in photos[first : first + 16]:
                if v < 2:
                    canvas, placed = letterbox(np.ascontiguousarray(rgb[:, ::-1] if v else rgb), (size, size))
                    b = boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [1, 0, 1, 0] if v else boxes
                    batch.append((canvas, placed.from_frame(b) if len(b) else np.zeros((0, 4), np.float32)))
                else:
                    batch.append(augment(rgb, boxes, size, rng))
            with torch.no_grad():
                features.append(net.trunk(to_tensor([c for c, _ in batch])).half())
            targets += [torch.from_numpy(b.astype(np.float32)) for _, b in batch]
        logger.info("cached view %d of every photo: %.0f s", v, time.monotonic() - start)
    return torch.cat(features), targets


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    photos = load_photos(tuple(args.train_sources))
    logger.info("%d training photos, %d boxes", len(photos), sum(len(b) for _, b in photos))
    net = BoxNet(args.size)
    net.backbone.eval()  # batch norm statistics stay ImageNet's (batches are small)
    start = time.monotonic()
    features, targets = cache_views(net, photos, args.views, args.size, rng, args.minutes * 60 * 0.35)
    cache_seconds = time.monotonic() - start
    logger.info("cached %d views in %.0f s", len(targets), cache_seconds)
    params = net.trainable()
    head_ids = {id(p) for p in net.heads.parameters()}
    optimiser = torch.optim.AdamW(
        [
            {"params": [p for p in params if id(p) in head_ids], "lr": args.lr},
            {"params": [p for p in params if id(p) not in head_ids], "lr": args.lr * 0.2},
        ],
        weight_decay=1e-4,
    )
    peaks = [group["lr"] for group in optimiser.param_groups]
    steps_per_epoch = len(targets) // args.batch
    total = steps_per_epoch * args.epochs
    budget = args.minutes * 60 - cache_seconds
    step, history = 0, []
    while step < total and time.monotonic() - start - cache_seconds < budget:
        picked = rng.choice(len(targets), args.batch, replace=False)
        loss, parts = box_loss(net, net.tail(features[picked].float()), [targets[i] for i in picked])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        # warm-up, then cosine to zero over the steps or the time budget, whichever runs out first
        progress = max(step / total, (time.monotonic() - start - cache_seconds) / budget)
        factor = min(step / 20, 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
        for group, peak in zip(optimiser.param_groups, peaks, strict=True):
            group["lr"] = peak * factor
        if step % 50 == 0:
            logger.info("step %d/%d loss %.3f %s %.0fs", step, total, float(loss), parts,
                        time.monotonic() - start)  # fmt: skip
            history.append(round(float(loss), 4))
    return {
        "steps": step,
        "planned_steps": total,
        "views": len(targets),
        "cache_seconds": round(cache_seconds, 1),
        "train_seconds": round(time.monotonic() - start - cache_seconds, 1),
        "loss_every_50_steps": history,
        "photos": len(photos),
        "net": net,
    }


def export(net: BoxNet, out: Path, calibration: list[np.ndarray], record: dict) -> None:
    """fp32 ONNX with Ultralytics metadata, then int8 QDQ (decode tail in float)."""
    out.mkdir(parents=True, exist_ok=True)
    wrapper = YoloExport(net.eval()).eval()
    dummy = torch.zeros((1, 3, net.size, net.size))
    fp32 = out / FP32_FILE
    with torch.no_grad():
        torch.onnx.export(wrapper, (dummy,), str(fp32), input_names=["images"], output_names=["output0"],
                          opset_version=17, dynamo=False)  # fmt: skip
    _add_metadata(fp32, net.size)
    frames = [(c.astype(np.float32) / 255).transpose(2, 0, 1) for c in calibration]
    int8 = out / INT8_FILE
    quantize_int8(fp32, int8, frames, input_name="images")
    _add_metadata(int8, net.size)
    meta = {"names": {0: CLASS_NAME}, "imgsz": [net.size, net.size], "stride": 32, "task": "detect"}
    flatbuffer = export_box_tflite(net, out / TFLITE_FP32_FILE, meta)
    nhwc = [(c.astype(np.float32) / 255) for c in calibration]
    quantize_box_tflite(flatbuffer, out / TFLITE_INT8_FILE, nhwc, meta)
    (out / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n")


def _add_metadata(path: Path, size: int) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in {
        "description": "Layerwatch box model: EfficientNet-Lite0 + anchor-free failure head",
        "task": "detect",
        "stride": "32",
        "imgsz": f"[{size}, {size}]",
        "names": "{0: '" + CLASS_NAME + "'}",
    }.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--epochs", type=int, default=40, help="passes over the cached views")
    parser.add_argument("--views", type=int, default=4, help="cached versions of each photo")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-sources", nargs="+", default=list(TRAIN_SOURCES))
    parser.add_argument("--from-checkpoint", type=Path, help="skip training: export this boxnet.pt")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 to share the cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.from_checkpoint:  # export again from a trained state (the record of that run is kept)
        net = BoxNet(args.size)
        net.load_state_dict(torch.load(args.from_checkpoint, map_location="cpu", weights_only=True))
        result = json.loads((args.from_checkpoint.parent / RECORD_FILE).read_text())
    else:
        result = train(args)
        net = result.pop("net")
    rng = np.random.default_rng(1)
    photos = load_photos(tuple(args.train_sources))
    calibration = [augment(*photos[i], args.size, rng)[0] for i in rng.permutation(len(photos))[:64]]
    record = {"size": args.size, "train_sources": args.train_sources, "seed": args.seed, **result}
    record = {k: v for k, v in record.items() if k != "net"}
    export(net, args.out, calibration, record)
    if not args.from_checkpoint:
        torch.save(net.state_dict(), args.out / "boxnet.pt")
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
