"""The box model's training parts: cell assignment, the loss, and its ONNX / LiteRT exports in the YOLOv8
layout (an untrained net at a small input, checked against the torch graph and run by the yolo plugin)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from appliance.config.yolo import YoloDetectorConfig  # noqa: E402
from appliance.detector.yolo_detector import YoloDetector  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    from appliance.training.boxnet import BoxNet

    torch.manual_seed(0)
    model = BoxNet(SIZE).eval()
    for head in model.heads:
        torch.nn.init.normal_(head.out.weight, std=0.05)
    return model


def test_cells_inside_a_box_centre_learn_it_and_small_boxes_get_their_nearest_cell(net) -> None:  # type: ignore[no-untyped-def]
    from appliance.training.boxnet import assign

    big = torch.tensor([[0.0, 0.0, 64.0, 64.0]])
    idx = assign(net.points, net.strides, big)
    assert (idx == 0).all()  # every cell centre of both levels lies in the frame-sized box
    tiny = torch.tensor([[30.0, 30.0, 33.0, 33.0]])
    idx = assign(net.points, net.strides, tiny)
    assert int((idx == 0).sum()) == 2  # no centre inside it: the nearest cell of each level
    assert (assign(net.points, net.strides, torch.zeros((0, 4))) == -1).all()


def test_the_loss_falls_when_fitting_one_box(net) -> None:  # type: ignore[no-untyped-def]
    from appliance.training.boxnet import box_loss

    x = torch.zeros((1, 3, SIZE, SIZE))
    target = [torch.tensor([[8.0, 8.0, 40.0, 48.0]])]
    opt = torch.optim.Adam(net.heads.parameters(), 1e-2)
    first = None
    for _ in range(30):
        loss, parts = box_loss(net, net(x), target)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.7 * first and parts["pos"] > 0
    net.eval()


def test_onnx_and_litert_exports_match_torch_and_run_in_the_plugin(net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from appliance.training.box_tflite import export_box_tflite, quantize_box_tflite, torch_reference
    from appliance.training.boxes import _add_metadata
    from appliance.training.boxnet import YoloExport

    rng = np.random.default_rng(0)
    images = rng.random((1, SIZE, SIZE, 3)).astype(np.float32)
    reference = torch_reference(net, images)  # (1, 5, 20), boxes normalised
    meta = {"names": {0: "failure"}, "imgsz": [SIZE, SIZE], "stride": 32}
    flatbuffer = export_box_tflite(net, tmp_path / "boxes.tflite", meta)
    quantize_box_tflite(flatbuffer, tmp_path / "boxes-int8.tflite", [images[0]] * 4, meta)
    onnx_path = tmp_path / "boxes.onnx"
    dummy = torch.zeros(1, 3, SIZE, SIZE)
    torch.onnx.export(YoloExport(net), (dummy,), str(onnx_path), input_names=["images"],
                      output_names=["output0"], opset_version=17, dynamo=False)  # fmt: skip
    _add_metadata(onnx_path, SIZE)
    frame = (images[0] * 255).astype(np.uint8)[..., ::-1].copy()  # BGR, already the input size
    results = {}
    for name in ("boxes.tflite", "boxes-int8.tflite", "boxes.onnx"):
        det = YoloDetector(
            YoloDetectorConfig(model=tmp_path / name, confidence=0.0, max_boxes=100), tmp_path / name
        )
        assert det.layout.kind == "v8" and det.names == {0: "failure"} and det.input_size == (SIZE, SIZE)
        raw = det.backend.run(images if name.endswith("tflite") else images.transpose(0, 3, 1, 2))[0]
        if name.endswith("onnx"):
            raw[:, :4] /= SIZE
        results[name] = raw
        assert len(det.boxes(frame)) > 0
    np.testing.assert_allclose(results["boxes.tflite"], reference, atol=1e-5)
    np.testing.assert_allclose(results["boxes.onnx"], reference, atol=1e-5)
    np.testing.assert_allclose(results["boxes-int8.tflite"], reference, atol=0.05)
