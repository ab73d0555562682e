"""Export the embedding net to ONNX (fp32), quantize it (int8 QDQ, static, calibrated on real frames)
and measure single-core latency with ONNX Runtime."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from appliance.detector.runtime import onnx_session
from appliance.training.backbone import EmbeddingNet

logger = logging.getLogger(__name__)


def export_onnx(net: EmbeddingNet, path: Path) -> None:
    """Write the contract graph: uint8 (1, S, S, 3) 'image' -> 'embedding', 'patch_embeddings'."""
    net = net.eval()
    width, height = net.input_size
    dummy = torch.zeros((1, height, width, 3), dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            net,
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=["embedding", "patch_embeddings"],
            opset_version=17,
            dynamo=False,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


class _FrameReader(CalibrationDataReader):
    """The calibration frames, in strides (``set_range``): ONNX Runtime keeps every activation of the
    frames of one stride in memory before it adds them to its histograms."""

    def __init__(self, frames: Sequence[np.ndarray], input_name: str = "image"):
        self._feeds = [{input_name: f[np.newaxis]} for f in frames]
        self._iter = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter = iter(self._feeds[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def quantize_int8(fp32: Path, int8: Path, frames: Sequence[np.ndarray], input_name: str = "image") -> None:
    """Static QDQ quantization (uint8 activations, int8 per-channel weights) calibrated on ``frames``
    (one input each without the batch axis: RGB uint8 at the model's input size for the embedding net)."""
    prepped = int8.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
    # the L2 normalisation at the end stays in float: quantizing it would cost accuracy for no speed
    exclude = _tail_nodes(onnx.load(str(prepped)))
    quantize_static(
        str(prepped),
        str(int8),
        _FrameReader(frames, input_name),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        calibrate_method=CalibrationMethod.Percentile,
        nodes_to_exclude=exclude,
        # 8 frames at a time into the histograms: all frames' activations at once took 24 GB at 448 x 336
        extra_options={"CalibPercentile": 99.99, "CalibStridedMinMax": _stride(len(frames))},
    )
    prepped.unlink(missing_ok=True)


def _stride(frames: int, most: int = 8) -> int:
    """The largest stride of at most ``most`` frames that divides ``frames`` (ONNX Runtime requires that)."""
    return next(s for s in range(min(most, frames), 0, -1) if frames % s == 0)


def _tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes after the last Conv (pooling, reshape, normalisation): kept in float."""
    nodes = list(model.graph.node)
    last_conv = max(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    return [n.name for n in nodes[last_conv + 1 :]]


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """The appliance's own ONNX Runtime session (:func:`appliance.detector.runtime.onnx_session`)."""
    return onnx_session(path, threads)


def bench(path: Path, input_size: tuple[int, int], runs: int = 100, threads: int = 1) -> float:
    """Median ms per frame on ``threads`` cores."""
    sess = session(path, threads)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1, input_size[1], input_size[0], 3), dtype=np.uint8)
    for _ in range(10):
        sess.run(None, {"image": frame})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {"image": frame})
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))
