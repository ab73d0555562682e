"""Inference backends that run a Layerwatch embedding model: ONNX Runtime and LiteRT.

The model contract (version 1), shared by every format:

* input ``image``: ``uint8`` RGB, shape (1, height, width, 3); normalisation happens inside the graph;
* output ``embedding``: ``float32`` (1, D), L2-normalised global embedding of the frame;
* output ``patch_embeddings``: ``float32`` (1, rows*cols, D), L2-normalised embeddings of a
  rows x cols grid of patches in row-major order (row 0 at the top), for the evidence heatmap.

A backend only turns pixels into embeddings; scoring them for a camera is
:mod:`appliance.detector.learner`'s job. LiteRT models are loaded with ``ai-edge-litert`` first
and ``tflite-runtime`` where that is what the device has (tflite-runtime needs numpy < 2).
"""

from __future__ import annotations

import abc
import logging
from pathlib import Path
from typing import Any

import numpy as np

from appliance.errors import BackendUnavailableError, ModelFormatError

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
EMBEDDING_NAME = "embedding"
PATCHES_NAME = "patch_embeddings"


def litert_interpreter(path: Path, threads: int) -> Any:
    """A LiteRT interpreter for ``path`` with its tensors allocated (ai-edge-litert first, then
    tflite-runtime). Raises ModelFormatError for a file it cannot load."""
    interpreter_class = _import_litert_interpreter()
    try:
        interpreter = interpreter_class(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except Exception as exc:
        raise ModelFormatError(f"{path}: LiteRT cannot load it: {exc}") from exc
    return interpreter


def onnx_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session for ``path``: ``threads`` intra-op threads, sequential, full graph
    optimisation, warnings off. Raises BackendUnavailableError without onnxruntime and ModelFormatError
    for a file it cannot load."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise BackendUnavailableError("onnxruntime is not installed: pip install onnxruntime") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # no pre-planned activation block: 5 MB less peak memory at 448 x 336, and no slower (measured 13.2
    # against 15.3 ms a frame on one core)
    options.enable_mem_pattern = False
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFormatError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc


class EmbeddingBackend(abc.ABC):
    """Runs one model file. ``embed`` takes one RGB uint8 image already at the input size."""

    runtime: str = "abstract"

    def __init__(self, path: Path, precision: str):
        self.path = path
        self.precision = precision

    @property
    def name(self) -> str:
        return f"{self.runtime}/{self.precision}"

    @abc.abstractmethod
    def embed(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (embedding (D,), patch_embeddings (P, D)) for one (H, W, 3) uint8 RGB image."""

    def warm_up(self, height: int, width: int, runs: int = 2) -> None:
        dummy = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(runs):
            self.embed(dummy)


class OnnxBackend(EmbeddingBackend):
    """ONNX Runtime on the CPU, ``threads`` intra-op threads, sequential execution."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, precision: str, threads: int = 1):
        super().__init__(path, precision)
        self._session = onnx_session(path, threads)
        names = {o.name for o in self._session.get_outputs()}
        inputs = {i.name for i in self._session.get_inputs()}
        if INPUT_NAME not in inputs or not {EMBEDDING_NAME, PATCHES_NAME} <= names:
            raise ModelFormatError(
                f"{path}: expected input {INPUT_NAME!r} and outputs {EMBEDDING_NAME!r}, {PATCHES_NAME!r}; "
                f"got inputs {sorted(inputs)} outputs {sorted(names)}"
            )
        self._outputs = [EMBEDDING_NAME, PATCHES_NAME]

    def embed(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embedding, patches = self._session.run(self._outputs, {INPUT_NAME: rgb[np.newaxis]})
        return embedding[0], patches[0]


def _import_litert_interpreter() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError as exc:
        raise BackendUnavailableError(
            "no LiteRT runtime: pip install ai-edge-litert (or tflite-runtime with numpy<2)"
        ) from exc


class LiteRtBackend(EmbeddingBackend):
    """LiteRT (TensorFlow Lite) interpreter; tensors are matched by name as in the contract."""

    runtime = "litert"

    def __init__(self, path: Path, precision: str, threads: int = 1):
        super().__init__(path, precision)
        self._interpreter = litert_interpreter(path, threads)
        inputs = self._interpreter.get_input_details()
        details = self._interpreter.get_output_details()
        outputs = {self._base_name(d["name"]): d["index"] for d in details}
        if len(inputs) != 1 or not {EMBEDDING_NAME, PATCHES_NAME} <= outputs.keys():
            raise ModelFormatError(
                f"{path}: tensors do not follow the Layerwatch model contract: expected one input "
                f"{INPUT_NAME!r} and outputs {EMBEDDING_NAME!r}, {PATCHES_NAME!r}; got inputs "
                f"{sorted(d['name'] for d in inputs)} outputs {sorted(d['name'] for d in details)}"
            )
        self._input = inputs[0]["index"]
        self._embedding = outputs[EMBEDDING_NAME]
        self._patches = outputs[PATCHES_NAME]

    @staticmethod
    def _base_name(name: str) -> str:
        # converters may prefix signature names ("serving_default_embedding:0"); match the whole
        # contract name, which itself contains "_" ("serving_default_patch_embeddings:0")
        base = name.split(":")[0]
        for wanted in (PATCHES_NAME, EMBEDDING_NAME):
            if base == wanted or base.endswith("_" + wanted):
                return wanted
        return base

    def embed(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._interpreter.set_tensor(self._input, rgb[np.newaxis])
        self._interpreter.invoke()
        embedding = self._interpreter.get_tensor(self._embedding)[0].copy()
        patches = self._interpreter.get_tensor(self._patches)[0].copy()
        return embedding, patches


def open_backend(path: Path, fmt: str, precision: str, threads: int = 1) -> EmbeddingBackend:
    """Load one model file with the runtime its format needs."""
    if fmt == "onnx":
        return OnnxBackend(path, precision, threads)
    if fmt == "litert":
        return LiteRtBackend(path, precision, threads)
    raise ModelFormatError(f"{path}: unknown model format {fmt!r} (onnx or litert)")


class TensorBackend(abc.ABC):
    """Runs a model file of any contract (a YOLO export): one input array in, every output out.

    ``input_shape`` / ``output_shapes`` are as the file declares them (a dynamic axis is -1);
    ``input_dtype`` is the numpy dtype the model takes. Quantized LiteRT tensors are (de)quantized here,
    so callers always pass and get float values in the model's own units."""

    runtime: str = "abstract"
    input_shape: tuple[int, ...] = ()
    input_dtype: np.dtype = np.dtype(np.float32)
    output_shapes: list[tuple[int, ...]] = []
    metadata: dict[str, str] = {}

    @abc.abstractmethod
    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """One inference; ``tensor`` is float (or uint8 for uint8 models) in ``input_shape``."""


class OnnxTensorBackend(TensorBackend):
    """ONNX Runtime on the CPU with the same session options as :class:`OnnxBackend`."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1):
        self._session = onnx_session(path, threads)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelFormatError(f"{path}: expected one input tensor, got {[i.name for i in inputs]}")
        self._input = inputs[0].name
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in inputs[0].shape)
        types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}
        if inputs[0].type not in types:
            raise ModelFormatError(f"{path}: input {self._input!r} has type {inputs[0].type}; expected float")
        self.input_dtype = np.dtype(types[inputs[0].type])
        self.output_shapes = [
            tuple(d if isinstance(d, int) else -1 for d in o.shape) for o in self._session.get_outputs()
        ]
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        outputs = self._session.run(None, {self._input: tensor.astype(self.input_dtype, copy=False)})
        return [np.asarray(o, np.float32) for o in outputs]


class LiteRtTensorBackend(TensorBackend):
    """LiteRT interpreter; int8/uint8 input and outputs are (de)quantized with their scale and zero point."""

    runtime = "litert"

    def __init__(self, path: Path, threads: int = 1):
        self._interpreter = litert_interpreter(path, threads)
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelFormatError(f"{path}: expected one input tensor, got {[d['name'] for d in inputs]}")
        self._input = inputs[0]
        self._outputs = self._interpreter.get_output_details()
        self.input_shape = tuple(int(d) for d in self._input["shape"])
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_shapes = [tuple(int(d) for d in o["shape"]) for o in self._outputs]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        scale, zero = self._input.get("quantization", (0.0, 0))
        if self.input_dtype in (np.int8, np.uint8) and scale:
            info = np.iinfo(self.input_dtype)
            tensor = np.clip(np.round(tensor / scale + zero), info.min, info.max)
        self._interpreter.set_tensor(self._input["index"], tensor.astype(self.input_dtype))
        self._interpreter.invoke()
        out = []
        for detail in self._outputs:
            value = self._interpreter.get_tensor(detail["index"]).astype(np.float32)
            o_scale, o_zero = detail.get("quantization", (0.0, 0))
            if np.dtype(detail["dtype"]) in (np.int8, np.uint8) and o_scale:
                value = (value - o_zero) * o_scale
            out.append(value)
        return out


def open_tensor_backend(path: Path, fmt: str, threads: int = 1) -> TensorBackend:
    """Load a model file of any contract with the runtime its format (``onnx`` / ``litert``) needs."""
    if fmt == "onnx":
        return OnnxTensorBackend(path, threads)
    if fmt == "litert":
        return LiteRtTensorBackend(path, threads)
    raise ModelFormatError(f"{path}: unknown model format {fmt!r} (onnx or litert)")
