"""Write the box model as LiteRT (TFLite) flatbuffers, without TensorFlow, as Ultralytics lays out TFLite.

The graph is built op by op with :class:`appliance.training.tflite._Graph` (the embedding net's writer):
``images`` float32 (1, S, S, 3) RGB in 0..1 -> the EfficientNet-Lite0 blocks -> both heads -> decode ->
``output0`` (1, 5, N): box centre x, y, width, height **normalised to 0..1** (what Ultralytics' TFLite
exports give) and the sigmoid score. Softplus is ``relu(x) + log(1 + exp(-|x|))``. The metadata
(``names``, ``imgsz``, ``stride``) is a ``metadata.json`` in a zip appended to the file, as Ultralytics
writes it. :func:`quantize_box_tflite` makes the int8 variant with LiteRT's own calibrator (float input
and output; ops it cannot quantize stay float).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from appliance.training.backbone import MEAN, STD
from appliance.training.boxnet import LEVEL_BLOCKS, BoxNet
from appliance.training.tflite import F32, I32, OPS, OPTS, _Graph, _pack, schema


def _binary(g: _Graph, code: int, a: int, b: int, name: str, shape: list[int]) -> int:
    out = g.tensor(name, shape)
    options = {OPS.ADD: (OPTS.AddOptions, schema.AddOptionsT), OPS.SUB: (OPTS.SubOptions, schema.SubOptionsT),
               OPS.MUL: (OPTS.MulOptions, schema.MulOptionsT)}[code]  # fmt: skip
    g.op(code, [a, b], [out], options[0], options[1]())
    return out


def _unary(g: _Graph, code: int, x: int, name: str) -> int:
    out = g.tensor(name, g.shape(x))
    g.op(code, [x], [out])
    return out


def _const(g: _Graph, name: str, value: np.ndarray) -> int:
    value = np.asarray(value, np.float32)
    return g.tensor(name, list(value.shape), F32, value)


def _slice(g: _Graph, x: int, start: int, size: int, name: str) -> int:
    shape = g.shape(x)
    out = g.tensor(name, [*shape[:-1], size])
    begin = g.tensor(name + "/begin", [3], I32, np.array([0, 0, start], np.int32))
    sizes = g.tensor(name + "/size", [3], I32, np.array([*shape[:-1], size], np.int32))
    g.op(OPS.SLICE, [x, begin, sizes], [out], OPTS.SliceOptions, schema.SliceOptionsT())
    return out


def _concat(g: _Graph, parts: list[int], axis: int, name: str) -> int:
    shape = g.shape(parts[0])
    shape[axis] = sum(g.shape(p)[axis] for p in parts)
    out = g.tensor(name, shape)
    opts = schema.ConcatenationOptionsT()
    opts.axis = axis
    g.op(OPS.CONCATENATION, parts, [out], OPTS.ConcatenationOptions, opts)
    return out


def export_box_tflite(net: BoxNet, path: Path, metadata: dict[str, object]) -> bytes:
    """Write ``net`` (eval mode) as a float32 ``.tflite`` in Ultralytics' TFLite layout (module docstring);
    returns the flatbuffer without the appended metadata (what :func:`quantize_box_tflite` takes)."""
    net = net.eval()
    bb, size = net.backbone, net.size
    g = _Graph()
    image = g.tensor("images", [1, size, size, 3])
    scaled = _binary(g, OPS.MUL, image, _const(g, "to_pixels", [255.0 / STD]), "scaled", [1, size, size, 3])
    x = _binary(g, OPS.SUB, scaled, _const(g, "mean", [MEAN / STD]), "normalised", [1, size, size, 3])
    x = g.conv(x, bb._conv_stem, bb._bn0, True, "stem")
    levels = []
    for i, block in enumerate(bb._blocks[: LEVEL_BLOCKS[-1] + 1]):
        inp, args = x, block._block_args
        if args.expand_ratio != 1:
            x = g.conv(x, block._expand_conv, block._bn0, True, f"b{i}/expand")
        x = g.conv(x, block._depthwise_conv, block._bn1, True, f"b{i}/dw")
        x = g.conv(x, block._project_conv, block._bn2, False, f"b{i}/project")
        if args.id_skip and args.stride in (1, [1], [1, 1]) and args.input_filters == args.output_filters:
            x = _binary(g, OPS.ADD, x, inp, f"b{i}/add", g.shape(x))
        if i in LEVEL_BLOCKS:
            levels.append(x)
    flat = []
    for n, (head, level) in enumerate(zip(net.heads, levels, strict=True)):
        hidden = g.conv(level, head.conv, None, True, f"head{n}/conv")
        out = g.conv(hidden, head.out, None, False, f"head{n}/out")
        _, rows, cols, channels = g.shape(out)
        reshaped = g.tensor(f"head{n}/flat", [1, rows * cols, channels])
        opts = schema.ReshapeOptionsT()
        opts.newShape = [1, rows * cols, channels]
        new_shape = g.tensor(f"head{n}/shape", [3], I32, np.array(opts.newShape, np.int32))
        g.op(OPS.RESHAPE, [out, new_shape], [reshaped], OPTS.ReshapeOptions, opts)
        flat.append(reshaped)
    raw = _concat(g, flat, 1, "raw")
    cells = g.shape(raw)[1]
    obj, dist = _slice(g, raw, 0, 1, "objectness"), _slice(g, raw, 1, 4, "distances")
    # softplus(x) = relu(x) + log(1 + exp(-|x|))
    negative = _unary(g, OPS.NEG, _unary(g, OPS.ABS, dist, "abs"), "neg_abs")
    exp = _unary(g, OPS.EXP, negative, "exp")
    log1p = _unary(
        g, OPS.LOG, _binary(g, OPS.ADD, exp, _const(g, "one", [1.0]), "one_plus", [1, cells, 4]), "log1p"
    )
    soft = _binary(g, OPS.ADD, _unary(g, OPS.RELU, dist, "relu"), log1p, "softplus", [1, cells, 4])
    strides = net.strides.numpy().reshape(1, cells, 1) / size  # normalised: distances in units of S
    dist_n = _binary(g, OPS.MUL, soft, _const(g, "strides", strides), "dist", [1, cells, 4])
    points = _const(g, "points", net.points.numpy().reshape(1, cells, 2) / size)
    top_left = _binary(g, OPS.SUB, points, _slice(g, dist_n, 0, 2, "lt"), "x0y0", [1, cells, 2])
    bottom_right = _binary(g, OPS.ADD, points, _slice(g, dist_n, 2, 2, "rb"), "x1y1", [1, cells, 2])
    total = _binary(g, OPS.ADD, top_left, bottom_right, "sum", [1, cells, 2])
    centre = _binary(g, OPS.MUL, total, _const(g, "half", [0.5]), "centre", [1, cells, 2])
    wh = _binary(g, OPS.SUB, bottom_right, top_left, "wh", [1, cells, 2])
    score = _unary(g, OPS.LOGISTIC, obj, "score")
    rows_ = _concat(g, [centre, wh, score], 2, "rows")
    output = g.tensor("output0", [1, 5, cells])
    perm = g.tensor("perm", [3], I32, np.array([0, 2, 1], np.int32))
    g.op(OPS.TRANSPOSE, [rows_, perm], [output], OPTS.TransposeOptions, schema.TransposeOptionsT())
    subgraph = schema.SubGraphT()
    subgraph.name, subgraph.tensors, subgraph.operators = "main", g.tensors, g.operators
    subgraph.inputs, subgraph.outputs = [image], [output]
    model = schema.ModelT()
    model.version, model.description = 3, "layerwatch box model (EfficientNet-Lite0 + anchor-free head)"
    model.operatorCodes = []
    for code in g.codes:
        c = schema.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
        model.operatorCodes.append(c)
    model.subgraphs, model.buffers = [subgraph], g.buffers
    flatbuffer = _pack(model)
    path.write_bytes(flatbuffer + _metadata_zip(metadata))
    return flatbuffer


def _metadata_zip(metadata: dict[str, object]) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
    return archive.getvalue()


def quantize_box_tflite(
    flatbuffer: bytes, int8: Path, frames: list[np.ndarray], metadata: dict[str, object]
) -> None:
    """int8 with LiteRT's calibrator on ``frames`` (float32 (S, S, 3) in 0..1); float input and output."""
    from ai_edge_litert import _pywrap_tensorflow_lite_calibration_wrapper as calibration

    content = flatbuffer  # the wrapper does not own the buffer: keep a reference while it runs
    calibrator = calibration.CalibrationWrapper(content, [], [])
    calibrator.Prepare([[1, *frames[0].shape]])
    for frame in frames:
        calibrator.FeedTensor([frame[np.newaxis].astype(np.float32)])
    quantized = calibrator.QuantizeModel(11, 11, True, 1, 5, False, False)
    int8.write_bytes(bytes(quantized) + _metadata_zip(metadata))
    del calibrator, content


def torch_reference(net: BoxNet, images: np.ndarray) -> np.ndarray:
    """What the TFLite graph must give for float NHWC ``images`` in 0..1: the ONNX output, normalised."""
    from appliance.training.boxnet import YoloExport

    with torch.no_grad():
        out = YoloExport(net.eval())(torch.from_numpy(images).permute(0, 3, 1, 2).float()).numpy()
    out[:, :4] /= net.size
    return out
