"""Tiny but real Layerwatch models for the tests, built here (no converter, no network).

Both models follow contract 1 (see :mod:`appliance.detector.runtime`) with D = 3, the frame's mean RGB:

* ``embedding`` (1, 3): the L2-normalised mean colour of the whole image;
* ``patch_embeddings`` (1, rows*cols, 3): the L2-normalised mean colour of each cell of a rows x cols grid,
  row-major (an average pool with filter = stride = cell size).

:func:`build_tflite` writes the graph as a TFLite flatbuffer with the object API of
``ai_edge_litert.schema_py_generated``; :func:`build_onnx` writes the same maths with the ``onnx`` helper
API; :func:`write_bundle` writes a complete bundle folder (both files, manifest, prototypes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MANIFEST = "layerwatch.json"
PROTOTYPES = "layerwatch.prototypes.npz"
TFLITE_FILE = "tiny-fp32.tflite"
ONNX_FILE = "tiny-fp32.onnx"
DEFAULT_SIZE = (40, 30)  # width, height
DEFAULT_GRID = (3, 4)  # rows, cols
L2_EPSILON = 1e-6  # what TFLite's L2_NORMALIZATION kernel uses: x / sqrt(max(sum(x^2), eps))


def _check_grid(size: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    rows, cols = grid
    if height % rows or width % cols:
        raise ValueError(f"input size {size} is not a multiple of the patch grid {grid}")
    return height // rows, width // cols


def build_tflite(
    path: Path,
    size: tuple[int, int] = DEFAULT_SIZE,
    grid: tuple[int, int] = DEFAULT_GRID,
    output_names: tuple[str, str] = ("embedding", "patch_embeddings"),
    input_name: str = "image",
) -> Path:
    """Write the tiny model as ``.tflite``; ``output_names`` (global, patches) can break the contract."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    width, height = size
    rows, cols = grid
    cell_h, cell_w = _check_grid(size, grid)
    ops = schema.BuiltinOperator
    options = schema.BuiltinOptions
    types = schema.TensorType

    buffers = [schema.BufferT()]  # buffer 0: the empty sentinel every model starts with

    def constant(values: np.ndarray) -> int:
        buf = schema.BufferT()
        buf.data = list(np.ascontiguousarray(values).tobytes())
        buffers.append(buf)
        return len(buffers) - 1

    tensors: list = []

    def tensor(name: str, shape: list[int], dtype: int, data: np.ndarray | None = None) -> int:
        t = schema.TensorT()
        t.name = name
        t.shape = list(shape)
        t.type = dtype
        t.buffer = 0 if data is None else constant(data)
        tensors.append(t)
        return len(tensors) - 1

    image = tensor(input_name, [1, height, width, 3], types.UINT8)
    pixels = tensor("pixels", [1, height, width, 3], types.FLOAT32)
    pooled = tensor("cell_means", [1, rows, cols, 3], types.FLOAT32)
    cell_shape = tensor("cell_shape", [3], types.INT32, np.array([1, rows * cols, 3], np.int32))
    cells = tensor("cells", [1, rows * cols, 3], types.FLOAT32)
    patches = tensor(output_names[1], [1, rows * cols, 3], types.FLOAT32)
    axes = tensor("mean_axes", [2], types.INT32, np.array([1, 2], np.int32))
    means = tensor("frame_mean", [1, 3], types.FLOAT32)
    global_shape = tensor("global_shape", [2], types.INT32, np.array([1, 3], np.int32))
    frame = tensor("frame", [1, 3], types.FLOAT32)
    embedding = tensor(output_names[0], [1, 3], types.FLOAT32)

    codes: list[int] = []
    operators = []

    def op(code: int, inputs: list[int], outputs: list[int], options_type: int, opts: object) -> None:
        if code not in codes:
            codes.append(code)
        o = schema.OperatorT()
        o.opcodeIndex = codes.index(code)
        o.inputs = inputs
        o.outputs = outputs
        o.builtinOptionsType = options_type
        o.builtinOptions = opts
        operators.append(o)

    cast = schema.CastOptionsT()
    cast.inDataType, cast.outDataType = types.UINT8, types.FLOAT32
    op(ops.CAST, [image], [pixels], options.CastOptions, cast)

    pool = schema.Pool2DOptionsT()
    pool.padding = schema.Padding.VALID
    pool.strideH, pool.strideW = cell_h, cell_w
    pool.filterHeight, pool.filterWidth = cell_h, cell_w
    op(ops.AVERAGE_POOL_2D, [pixels], [pooled], options.Pool2DOptions, pool)

    reshape_cells = schema.ReshapeOptionsT()
    reshape_cells.newShape = [1, rows * cols, 3]
    op(ops.RESHAPE, [pooled, cell_shape], [cells], options.ReshapeOptions, reshape_cells)
    op(ops.L2_NORMALIZATION, [cells], [patches], options.L2NormOptions, schema.L2NormOptionsT())

    reducer = schema.ReducerOptionsT()
    reducer.keepDims = False
    op(ops.MEAN, [pixels, axes], [means], options.ReducerOptions, reducer)
    reshape_global = schema.ReshapeOptionsT()
    reshape_global.newShape = [1, 3]
    op(ops.RESHAPE, [means, global_shape], [frame], options.ReshapeOptions, reshape_global)
    op(ops.L2_NORMALIZATION, [frame], [embedding], options.L2NormOptions, schema.L2NormOptionsT())

    subgraph = schema.SubGraphT()
    subgraph.name = "main"
    subgraph.tensors = tensors
    subgraph.inputs = [image]
    subgraph.outputs = [embedding, patches]
    subgraph.operators = operators

    def tensor_map(name: str, index: int) -> object:
        m = schema.TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    signature = schema.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs = [tensor_map(input_name, image)]
    signature.outputs = [tensor_map(output_names[0], embedding), tensor_map(output_names[1], patches)]

    opcodes = []
    for code in codes:
        c = schema.OperatorCodeT()
        c.builtinCode = code
        c.deprecatedBuiltinCode = min(code, 127)  # codes below 127 live in the deprecated int8 field
        c.version = 1
        opcodes.append(c)

    model = schema.ModelT()
    model.version = 3
    model.description = "layerwatch test model: mean RGB per frame and per patch"
    model.operatorCodes = opcodes
    model.subgraphs = [subgraph]
    model.buffers = buffers
    model.signatureDefs = [signature]

    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def build_onnx(
    path: Path,
    size: tuple[int, int] = DEFAULT_SIZE,
    grid: tuple[int, int] = DEFAULT_GRID,
    output_names: tuple[str, str] = ("embedding", "patch_embeddings"),
) -> Path:
    """Write the same model as ``.onnx`` (opset 17), normalised exactly like TFLite's L2_NORMALIZATION."""
    import onnx
    from onnx import TensorProto, helper

    width, height = size
    rows, cols = grid
    cell_h, cell_w = _check_grid(size, grid)

    def const(name: str, values: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(values, name))

    def l2_normalise(x: str, out: str, axis: int) -> list[onnx.NodeProto]:
        return [
            helper.make_node("Mul", [x, x], [f"{x}_sq"]),
            helper.make_node("ReduceSum", [f"{x}_sq", "l2_axis" + str(axis)], [f"{x}_ss"], keepdims=1),
            helper.make_node("Max", [f"{x}_ss", "l2_eps"], [f"{x}_ss_eps"]),
            helper.make_node("Sqrt", [f"{x}_ss_eps"], [f"{x}_norm"]),
            helper.make_node("Div", [x, f"{x}_norm"], [out]),
        ]

    nodes = [
        const("l2_eps", np.array(L2_EPSILON, np.float32)),
        const("l2_axis1", np.array([1], np.int64)),
        const("l2_axis2", np.array([2], np.int64)),
        const("cell_shape", np.array([1, 3, rows * cols], np.int64)),
        helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["pixels"], ["pixels_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node(
            "AveragePool",
            ["pixels_nchw"],
            ["cell_means"],
            kernel_shape=[cell_h, cell_w],
            strides=[cell_h, cell_w],
        ),
        helper.make_node("Reshape", ["cell_means", "cell_shape"], ["cells_cp"]),  # (1, 3, rows*cols)
        helper.make_node("Transpose", ["cells_cp"], ["cells"], perm=[0, 2, 1]),  # row-major cells
        *l2_normalise("cells", output_names[1], axis=2),
        helper.make_node("ReduceMean", ["pixels_nchw"], ["frame"], axes=[2, 3], keepdims=0),  # (1, 3)
        *l2_normalise("frame", output_names[0], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "layerwatch-tiny",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, height, width, 3])],
        [
            helper.make_tensor_value_info(output_names[0], TensorProto.FLOAT, [1, 3]),
            helper.make_tensor_value_info(output_names[1], TensorProto.FLOAT, [1, rows * cols, 3]),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="layerwatch-tests"
    )
    model.ir_version = 8  # readable by older onnxruntime releases too
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def reference_embeddings(
    rgb: np.ndarray, grid: tuple[int, int] = DEFAULT_GRID
) -> tuple[np.ndarray, np.ndarray]:
    """What both models compute for one (H, W, 3) uint8 RGB image, in numpy: ((3,), (rows*cols, 3))."""
    rows, cols = grid
    height, width = rgb.shape[:2]
    pixels = rgb.astype(np.float64)
    cells = pixels.reshape(rows, height // rows, cols, width // cols, 3).mean(axis=(1, 3)).reshape(-1, 3)
    frame = pixels.mean(axis=(0, 1))

    def norm(x: np.ndarray) -> np.ndarray:
        return (x / np.sqrt(np.maximum((x * x).sum(axis=-1, keepdims=True), L2_EPSILON))).astype(np.float32)

    return norm(frame), norm(cells)


def write_prototypes(path: Path) -> Path:
    """Generic prototypes in the RGB-mean embedding space: ok = grey-ish, failure = red-ish."""
    ok = _unit([[0.50, 0.50, 0.50], [0.45, 0.50, 0.55], [0.55, 0.50, 0.45], [0.50, 0.55, 0.50]])
    failure = _unit([[0.90, 0.20, 0.20], [0.85, 0.30, 0.25], [0.95, 0.15, 0.30]])
    np.savez(path, ok=ok, failure=failure)
    return path


def write_bundle(
    folder: Path,
    size: tuple[int, int] = DEFAULT_SIZE,
    grid: tuple[int, int] = DEFAULT_GRID,
    name: str = "layerwatch-test-tiny",
    threshold: float = 0.5,
    uncertain_band: float = 0.1,
) -> Path:
    """Write a complete bundle (ONNX + TFLite variants, manifest, prototypes); returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    build_tflite(folder / TFLITE_FILE, size, grid)
    build_onnx(folder / ONNX_FILE, size, grid)
    write_prototypes(folder / PROTOTYPES)
    manifest = {
        "name": name,
        "contract": 1,
        "input_size": [size[0], size[1]],
        "patch_grid": [grid[0], grid[1]],
        "threshold": threshold,
        "uncertain_band": uncertain_band,
        "scoring": {"scale": 12.0, "margin": 0.0},
        "prototypes": PROTOTYPES,
        "variants": [
            {"file": ONNX_FILE, "format": "onnx", "precision": "fp32"},
            {"file": TFLITE_FILE, "format": "litert", "precision": "fp32"},
        ],
    }
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
