"""Small but real YOLO exports for the tests, built here: torch networks exported to ONNX in each layout,
and a LiteRT flatbuffer, all with known weights and biases that produce known boxes.

Every network is ``global average pool -> Linear(3, R * C)`` with zero weights and the box table as the
bias, reshaped to the layout's output: whatever the frame, the model "sees" :data:`SCENE`. The scene
lives on a 64 x 64 canvas and holds two classes, ``spaghetti`` (0) and ``nozzle`` (1).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

SIZE = 64
NAMES = {0: "spaghetti", 1: "nozzle"}
# cx, cy, w, h (canvas pixels), class, confidence
SCENE = [
    ("A", 20.0, 30.0, 16.0, 12.0, 0, 0.9),
    ("B", 21.0, 31.0, 16.0, 12.0, 0, 0.8),  # IoU with A 0.78: suppressed by NMS
    ("C", 48.0, 40.0, 10.0, 10.0, 0, 0.6),
    ("D", 40.0, 20.0, 12.0, 12.0, 1, 0.95),
    ("E", 10.0, 50.0, 6.0, 6.0, 0, 0.1),  # under the confidence threshold
    ("F", 20.0, 30.0, 16.0, 12.0, 1, 0.3),  # A's place, the other class: kept by per-class NMS
    ("G", 30.0, 10.0, 8.0, 8.0, 1, 0.2),
    ("H", 50.0, 12.0, 8.0, 8.0, 0, 0.05),
]
AFTER_NMS = ("A", "C", "D", "F")


def table(layout: str, scene: list = SCENE, classes: int = 2, normalised: bool = False) -> np.ndarray:
    """The output (without the batch axis) an export of ``layout`` gives for ``scene``."""
    rows = []
    for _, cx, cy, w, h, cls, conf in scene:
        if layout == "end2end":
            rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, conf, cls])
            continue
        scores = [0.0] * classes
        scores[cls] = conf if layout == "v8" else 1.0
        rows.append([cx, cy, w, h] + ([] if layout == "v8" else [conf]) + scores)
    out = np.array(rows, np.float32)
    if normalised:
        out[:, :4] /= SIZE
    return out.T.copy() if layout == "v8" else out


def expected_boxes(names: tuple[str, ...], frame: tuple[int, int]) -> np.ndarray:
    """The named scene boxes in frame coordinates (x0, y0, x1, y1 normalised, confidence) for a frame of
    (width, height) letterboxed onto the 64 x 64 canvas."""
    width, height = frame
    ratio = min(SIZE / width, SIZE / height)
    pad_x, pad_y = (SIZE - round(width * ratio)) / 2, (SIZE - round(height * ratio)) / 2
    out = []
    for name, cx, cy, w, h, _, conf in SCENE:
        if name in names:
            x0, x1 = ((cx - w / 2 - pad_x) / ratio / width), ((cx + w / 2 - pad_x) / ratio / width)
            y0, y1 = ((cy - h / 2 - pad_y) / ratio / height), ((cy + h / 2 - pad_y) / ratio / height)
            out.append([*np.clip([x0, y0, x1, y1], 0, 1), conf])
    return np.array(out, np.float32)


def build_onnx(
    path: Path,
    layout: str,
    out: np.ndarray | None = None,
    names: dict[int, str] | None = NAMES,
    extra_outputs: int = 0,
) -> Path:
    """Export the fixed-scene torch network with output ``out`` (default: :func:`table` of ``layout``) and
    Ultralytics' metadata (``names``, ``imgsz``, ``stride``, ``task``)."""
    import onnx
    import torch
    from torch import nn

    values = table(layout) if out is None else out

    class FixedScene(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, values.size)
            nn.init.zeros_(self.fc.weight)
            with torch.no_grad():
                self.fc.bias.copy_(torch.from_numpy(values.ravel()))

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...] | torch.Tensor:
            boxes = self.fc(images.mean(dim=(2, 3))).reshape(1, *values.shape)
            if extra_outputs:
                return (boxes, *[images[:, :1] * 0 for _ in range(extra_outputs)])
            return boxes

    net = FixedScene().eval()
    outputs = ["output0"] + [f"output{i + 1}" for i in range(extra_outputs)]
    with torch.no_grad():
        torch.onnx.export(net, (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["images"],
                          output_names=outputs, opset_version=17, dynamo=False)  # fmt: skip
    model = onnx.load(str(path))
    meta = {"task": "detect", "stride": "32", "imgsz": f"[{SIZE}, {SIZE}]"}
    if names is not None:
        meta["names"] = str(names)
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def build_tflite(path: Path, layout: str = "v8", names: dict[int, str] | None = NAMES) -> Path:
    """The same scene as a LiteRT flatbuffer as Ultralytics writes TFLite: float NHWC input, boxes
    normalised to 0..1, metadata in a ``metadata.json`` of a zip appended to the file.
    Graph: MEAN(image) * 0 + table."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    values = table(layout, normalised=True)[np.newaxis]
    types, ops, opts = schema.TensorType, schema.BuiltinOperator, schema.BuiltinOptions
    buffers = [schema.BufferT()]
    tensors: list = []

    def tensor(
        name: str, shape: list[int], dtype: int = types.FLOAT32, data: np.ndarray | None = None
    ) -> int:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = list(np.ascontiguousarray(data).tobytes())
            buffers.append(buf)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    image = tensor("images", [1, SIZE, SIZE, 3])
    axes = tensor("axes", [3], types.INT32, np.array([1, 2, 3], np.int32))
    mean = tensor("mean", [1])
    zero = tensor("zero", [1], data=np.zeros(1, np.float32))
    nothing = tensor("nothing", [1])
    scene = tensor("scene", list(values.shape), data=values.astype(np.float32))
    output = tensor("Identity", list(values.shape))
    codes: list[int] = []
    operators = []

    def op(code: int, inputs: list[int], outputs: list[int], opt_type: int, options: object) -> None:
        codes.append(code) if code not in codes else None
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = codes.index(code), inputs, outputs
        o.builtinOptionsType, o.builtinOptions = opt_type, options
        operators.append(o)

    reducer = schema.ReducerOptionsT()
    reducer.keepDims = False
    op(ops.MEAN, [image, axes], [mean], opts.ReducerOptions, reducer)
    op(ops.MUL, [mean, zero], [nothing], opts.MulOptions, schema.MulOptionsT())
    op(ops.ADD, [nothing, scene], [output], opts.AddOptions, schema.AddOptionsT())
    subgraph = schema.SubGraphT()
    subgraph.name, subgraph.tensors, subgraph.operators = "main", tensors, operators
    subgraph.inputs, subgraph.outputs = [image], [output]
    model = schema.ModelT()
    model.version, model.subgraphs, model.buffers = 3, [subgraph], buffers
    model.operatorCodes = []
    for code in codes:
        c = schema.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
        model.operatorCodes.append(c)
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    data = bytes(builder.Output())
    if names is not None:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("metadata.json", json.dumps({"names": names, "imgsz": [SIZE, SIZE], "stride": 32}))
        data += archive.getvalue()
    path.write_bytes(data)
    return path
