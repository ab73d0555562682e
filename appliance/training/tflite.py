"""Write the embedding net as a LiteRT (TFLite) float32 flatbuffer, without TensorFlow.

No converter is installed (the TFLite converters on PyPI need TensorFlow), so the graph is written op by op
with the flatbuffer schema shipped in ``ai-edge-litert``: EfficientNet-Lite0 is only CONV_2D,
DEPTHWISE_CONV_2D (BatchNorm folded in, ReLU6 fused), ADD, MEAN or REDUCE_MAX, MAX_POOL_2D, RESHAPE and
L2_NORMALIZATION. TFLite's
``SAME`` padding equals the network's static "same" padding (the extra pixel goes bottom/right).
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import torch
from ai_edge_litert import schema_py_generated as schema

from appliance.training.backbone import MEAN, STD, EmbeddingNet

OPS = schema.BuiltinOperator
OPTS = schema.BuiltinOptions
F32, U8, I32 = schema.TensorType.FLOAT32, schema.TensorType.UINT8, schema.TensorType.INT32


def _fold(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    w = conv.weight.detach().double().numpy()
    b = np.zeros(w.shape[0]) if conv.bias is None else conv.bias.detach().double().numpy()
    if bn is not None:
        scale = bn.weight.detach().double().numpy() / np.sqrt(
            bn.running_var.detach().double().numpy() + bn.eps
        )
        w = w * scale[:, None, None, None]
        b = (b - bn.running_mean.detach().double().numpy()) * scale + bn.bias.detach().double().numpy()
    return w.astype(np.float32), b.astype(np.float32)


class _Graph:
    def __init__(self) -> None:
        self.buffers = [schema.BufferT()]
        self.tensors: list[schema.TensorT] = []
        self.codes: list[int] = []
        self.operators: list[schema.OperatorT] = []

    def tensor(self, name: str, shape: list[int], dtype: int = F32, data: np.ndarray | None = None) -> int:
        t = schema.TensorT()
        t.name, t.shape, t.type = name, list(shape), dtype
        t.buffer = 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(
        self, code: int, inputs: list[int], outputs: list[int], opt_type: int = 0, opts: object = None
    ) -> None:
        if code not in self.codes:
            self.codes.append(code)
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes.index(code), inputs, outputs
        o.builtinOptionsType, o.builtinOptions = opt_type, opts
        self.operators.append(o)

    def shape(self, index: int) -> list[int]:
        return list(self.tensors[index].shape)

    def conv(
        self, x: int, conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d | None, relu6: bool, name: str
    ) -> int:
        w, b = _fold(conv, bn)
        _, h, wd, _ = self.shape(x)
        stride = conv.stride[0]
        out_shape = [1, -(-h // stride), -(-wd // stride), w.shape[0]]
        out = self.tensor(name, out_shape)
        act = schema.ActivationFunctionType.RELU6 if relu6 else schema.ActivationFunctionType.NONE
        bias = self.tensor(name + "/bias", [w.shape[0]], F32, b)
        if conv.groups == 1:
            weight = self.tensor(name + "/weight", [w.shape[0], w.shape[2], w.shape[3], w.shape[1]], F32,
                                 w.transpose(0, 2, 3, 1))  # fmt: skip
            opts = schema.Conv2DOptionsT()
            opts.padding, opts.strideH, opts.strideW = schema.Padding.SAME, stride, stride
            opts.dilationHFactor = opts.dilationWFactor = 1
            opts.fusedActivationFunction = act
            self.op(OPS.CONV_2D, [x, weight, bias], [out], OPTS.Conv2DOptions, opts)
        else:  # depthwise, multiplier 1: weight (C, 1, k, k) -> (1, k, k, C)
            weight = self.tensor(name + "/weight", [1, w.shape[2], w.shape[3], w.shape[0]], F32,
                                 w.transpose(1, 2, 3, 0))  # fmt: skip
            dopts = schema.DepthwiseConv2DOptionsT()
            dopts.padding, dopts.strideH, dopts.strideW = schema.Padding.SAME, stride, stride
            dopts.depthMultiplier, dopts.dilationHFactor, dopts.dilationWFactor = 1, 1, 1
            dopts.fusedActivationFunction = act
            self.op(OPS.DEPTHWISE_CONV_2D, [x, weight, bias], [out], OPTS.DepthwiseConv2DOptions, dopts)
        return out


def export_tflite(net: EmbeddingNet, path: Path) -> None:
    """Write ``net`` (eval mode) as a contract-1 ``.tflite``: uint8 image -> embedding, patch_embeddings
    (mean or max pooled as ``net.pooling``; cells max pooled in ``net.cell_pool`` blocks)."""
    net = net.eval()
    bb = net.backbone
    width, height = net.input_size
    g = _Graph()
    image = g.tensor("image", [1, height, width, 3], U8)
    pixels = g.tensor("pixels", [1, height, width, 3])
    cast = schema.CastOptionsT()
    cast.inDataType, cast.outDataType = U8, F32
    g.op(OPS.CAST, [image], [pixels], OPTS.CastOptions, cast)
    centred = g.tensor("centred", [1, height, width, 3])
    g.op(OPS.SUB, [pixels, g.tensor("mean", [1], F32, np.array([MEAN], np.float32))], [centred],
         OPTS.SubOptions, schema.SubOptionsT())  # fmt: skip
    x = g.tensor("normalised", [1, height, width, 3])
    g.op(OPS.MUL, [centred, g.tensor("inv_std", [1], F32, np.array([1.0 / STD], np.float32))], [x],
         OPTS.MulOptions, schema.MulOptionsT())  # fmt: skip
    x = g.conv(x, bb._conv_stem, bb._bn0, True, "stem")
    for i, block in enumerate(bb._blocks):
        inp = x
        args = block._block_args
        if args.expand_ratio != 1:
            x = g.conv(x, block._expand_conv, block._bn0, True, f"b{i}/expand")
        x = g.conv(x, block._depthwise_conv, block._bn1, True, f"b{i}/dw")
        x = g.conv(x, block._project_conv, block._bn2, False, f"b{i}/project")
        if args.id_skip and args.stride in (1, [1], [1, 1]) and args.input_filters == args.output_filters:
            added = g.tensor(f"b{i}/add", g.shape(x))
            g.op(OPS.ADD, [x, inp], [added], OPTS.AddOptions, schema.AddOptionsT())
            x = added
    x = g.conv(x, bb._conv_head, bb._bn1, True, "head")
    if isinstance(net.proj, torch.nn.Conv2d):
        x = g.conv(x, net.proj, None, False, "proj")
    _, rows, cols, dim = g.shape(x)
    pooled = g.tensor("pooled", [1, dim])
    reducer = schema.ReducerOptionsT()
    reducer.keepDims = False
    reduce_op = OPS.REDUCE_MAX if net.pooling == "max" else OPS.MEAN
    g.op(reduce_op, [x, g.tensor("axes", [2], I32, np.array([1, 2], np.int32))], [pooled],
         OPTS.ReducerOptions, reducer)  # fmt: skip
    embedding = g.tensor("embedding", [1, dim])
    g.op(OPS.L2_NORMALIZATION, [pooled], [embedding], OPTS.L2NormOptions, schema.L2NormOptionsT())
    if net.cell_pool > 1:  # SAME padding pools the ragged last row/column alone, as torch's ceil_mode
        k = net.cell_pool
        rows, cols = -(-rows // k), -(-cols // k)
        blocks = g.tensor("cell_blocks", [1, rows, cols, dim])
        pool = schema.Pool2DOptionsT()
        pool.padding, pool.strideH, pool.strideW = schema.Padding.SAME, k, k
        pool.filterHeight, pool.filterWidth = k, k
        pool.fusedActivationFunction = schema.ActivationFunctionType.NONE
        g.op(OPS.MAX_POOL_2D, [x], [blocks], OPTS.Pool2DOptions, pool)
        x = blocks
    cells = g.tensor("cells", [1, rows * cols, dim])
    reshape = schema.ReshapeOptionsT()
    reshape.newShape = [1, rows * cols, dim]
    new_shape = g.tensor("cells_shape", [3], I32, np.array([1, rows * cols, dim], np.int32))
    g.op(OPS.RESHAPE, [x, new_shape], [cells], OPTS.ReshapeOptions, reshape)
    patches = g.tensor("patch_embeddings", [1, rows * cols, dim])
    g.op(OPS.L2_NORMALIZATION, [cells], [patches], OPTS.L2NormOptions, schema.L2NormOptionsT())
    _write(g, image, embedding, patches, path)


def _write(g: _Graph, image: int, embedding: int, patches: int, path: Path) -> None:
    subgraph = schema.SubGraphT()
    subgraph.name, subgraph.tensors, subgraph.operators = "main", g.tensors, g.operators
    subgraph.inputs, subgraph.outputs = [image], [embedding, patches]

    def tensor_map(name: str, index: int) -> schema.TensorMapT:
        m = schema.TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = [tensor_map("image", image)]
    signature.outputs = [tensor_map("embedding", embedding), tensor_map("patch_embeddings", patches)]
    opcodes = []
    for code in g.codes:
        c = schema.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
        opcodes.append(c)
    model = schema.ModelT()
    model.version, model.description = 3, "layerwatch embedding model (EfficientNet-Lite0), contract 1"
    model.operatorCodes, model.subgraphs, model.buffers = opcodes, [subgraph], g.buffers
    model.signatureDefs = [signature]
    path.write_bytes(_pack(model))


def _pack(model: schema.ModelT) -> bytes:
    builder = flatbuffers.Builder(16 * 1024 * 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantize_tflite(fp32: Path, int8: Path, frames: list[np.ndarray]) -> None:
    """Post-training int8 quantization with LiteRT's own calibrator (no TensorFlow): int8 activations,
    per-channel int8 weights, int32 biases, calibrated on ``frames`` (RGB uint8 at the input size);
    the uint8 input and float outputs keep their types."""
    from ai_edge_litert import _pywrap_tensorflow_lite_calibration_wrapper as calibration

    content = fp32.read_bytes()  # the wrapper does not own the buffer: keep a reference while it runs
    calibrator = calibration.CalibrationWrapper(content, [], [])
    calibrator.Prepare([[1, *frames[0].shape]])
    for frame in frames:
        calibrator.FeedTensor([frame[np.newaxis]])
    # numpy dtype numbers: float32 = 11 (inputs/outputs stay float), int8 = 1 (activations), int32 = 5 (bias)
    quantized = calibrator.QuantizeModel(11, 11, True, 1, 5, False, False)
    model = schema.ModelT.InitFromPackedBuf(bytes(quantized), 0)
    _float_l2_norm(model)
    _uint8_input(model)
    int8.write_bytes(_pack(model))
    del calibrator, content


def _uint8_input(model: schema.ModelT) -> None:
    """Feed the uint8 image straight into the int8 graph. The calibrator keeps the float input stage
    (``CAST -> QUANTIZE -> SUB -> MUL``), whose QUANTIZE rounds pixels to its own coarse step (about 1.5
    grey levels); its four passes over the frame take no measurable time with XNNPACK. The normalisation
    ``(x - MEAN) / STD`` is itself an affine quantization, so the image tensor gets scale ``1 / STD`` and
    zero point ``MEAN`` and one ``QUANTIZE`` (uint8 -> int8 requantization: ``q - 128`` when the stem's
    input has scale 1/128 and zero point -1, as calibration gives it) replaces the four ops, losslessly.
    Edits ``model`` in place."""
    g = model.subgraphs[0]
    code_of = [c.builtinCode for c in model.operatorCodes]
    first_conv = next(i for i, op in enumerate(g.operators) if code_of[op.opcodeIndex] == OPS.CONV_2D)
    stage = [code_of[op.opcodeIndex] for op in g.operators[:first_conv]]
    if sorted(stage) != sorted([OPS.CAST, OPS.QUANTIZE, OPS.SUB, OPS.MUL]):
        raise ValueError(f"unexpected input stage of the quantized model: {stage}")
    image, normalised = g.inputs[0], g.operators[first_conv].inputs[0]
    params = schema.QuantizationParametersT()
    params.scale, params.zeroPoint = np.array([1.0 / STD], np.float32), np.array([int(MEAN)], np.int64)
    g.tensors[image].quantization = params
    quantize = next(op for op in g.operators[:first_conv] if code_of[op.opcodeIndex] == OPS.QUANTIZE)
    quantize.inputs, quantize.outputs = [image], [normalised]
    g.operators = [quantize, *g.operators[first_conv:]]


def _float_l2_norm(model: schema.ModelT) -> None:
    """Run the final L2 normalisations in float: in int8 their output step is 1/128, far too coarse for
    1280 components of about 0.03. ``L2(q) -> DEQUANTIZE`` becomes ``DEQUANTIZE -> L2(float)``. Edits
    ``model`` in place."""
    g = model.subgraphs[0]
    code_of = [c.builtinCode for c in model.operatorCodes]
    dequantize_of = {
        op.inputs[0]: op for op in g.operators if code_of[op.opcodeIndex] == OPS.DEQUANTIZE
    }  # int8 tensor -> the op turning it into a float output
    operators = []
    for op in g.operators:
        code = code_of[op.opcodeIndex]
        if code == OPS.DEQUANTIZE and any(
            code_of[o.opcodeIndex] == OPS.L2_NORMALIZATION and o.outputs[0] == op.inputs[0]
            for o in g.operators
        ):
            continue  # moved before its L2_NORMALIZATION below
        if code == OPS.L2_NORMALIZATION and op.outputs[0] in dequantize_of:
            dequantize = dequantize_of[op.outputs[0]]
            source = g.tensors[op.inputs[0]]
            t = schema.TensorT()
            t.name, t.shape, t.type, t.buffer = source.name + b"_float", list(source.shape), F32, 0
            g.tensors.append(t)
            float_in = len(g.tensors) - 1
            final_out = dequantize.outputs[0]
            dequantize.inputs, dequantize.outputs = [op.inputs[0]], [float_in]
            op.inputs, op.outputs = [float_in], [final_out]
            operators += [dequantize, op]
            model.operatorCodes[op.opcodeIndex].version = 1
            continue
        operators.append(op)
    g.operators = operators


def bench_tflite(path: Path, input_size: tuple[int, int], runs: int = 100, threads: int = 1) -> float:
    """Median ms per frame with the LiteRT interpreter (XNNPACK) on ``threads`` cores."""
    import time

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    frame = np.random.default_rng(0).integers(0, 256, (1, input_size[1], input_size[0], 3), dtype=np.uint8)
    times = []
    for i in range(runs + 10):
        start = time.perf_counter()
        interpreter.set_tensor(index, frame)
        interpreter.invoke()
        if i >= 10:
            times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))
