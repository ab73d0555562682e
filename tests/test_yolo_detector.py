"""The ``yolo`` detector plugin on real exports: torch networks with known boxes exported in each layout
(ONNX v8, v5, NMS in the graph; a LiteRT flatbuffer), and the shipped box model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.config.model import LayerwatchConfig
from appliance.config.yolo import YoloDetectorConfig
from appliance.detector import Verdict, build_calibration, load_detector
from appliance.detector.camera_learner import CameraLearner
from appliance.detector.letterbox import letterbox
from appliance.detector.yolo_detector import YoloDetector
from appliance.errors import ModelFormatError
from tests import yolo_builders as yb

pytest.importorskip("torch")

FRAME = (128, 64)  # width, height: letterboxed with 16 px of gray above and below


def frame(value: int = 90) -> np.ndarray:
    return np.full((FRAME[1], FRAME[0], 3), value, np.uint8)


def detector(path: Path, **config: object) -> YoloDetector:
    loaded = load_detector(YoloDetectorConfig(model=path, **config))  # type: ignore[arg-type]
    assert isinstance(loaded, YoloDetector)
    return loaded


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("yolo")
    out = {layout: yb.build_onnx(folder / f"{layout}.onnx", layout) for layout in ("v8", "v5")}
    end2end = [row for row in yb.SCENE if row[0] in (*yb.AFTER_NMS, "E")]
    out["end2end"] = yb.build_onnx(folder / "end2end.onnx", "end2end", yb.table("end2end", end2end))
    out["tflite"] = yb.build_tflite(folder / "v8.tflite")
    return out


@pytest.mark.parametrize("kind", ["v8", "v5", "end2end", "tflite"])
def test_each_layout_decodes_to_the_known_boxes_after_nms(exports: dict[str, Path], kind: str) -> None:
    det = detector(exports[kind], failure_classes=["spaghetti"], uncertain_band=0.0)
    assert det.layout.kind == ("v8" if kind == "tflite" else kind)
    assert det.input_size == (yb.SIZE, yb.SIZE)
    result = det.analyse(frame())
    got = np.array([[b.x0, b.y0, b.x1, b.y1, b.score] for b in result.boxes], np.float32)
    np.testing.assert_allclose(got, yb.expected_boxes(("A", "C"), FRAME), atol=1e-4)
    assert result.score == pytest.approx(0.9, abs=1e-5)
    assert result.verdict is Verdict.FAILURE
    # by index: the other class; per-class NMS kept F where A is
    by_index = detector(exports[kind], failure_classes=[1]).analyse(frame())
    assert [round(b.score, 3) for b in by_index.boxes] == [0.95, 0.3]


def test_letterbox_is_ultralytics_gray_padding_and_rounding() -> None:
    canvas, placed = letterbox(frame(), (64, 64))
    assert canvas.shape == (64, 64, 3) and (placed.ratio, placed.pad_x, placed.pad_y) == (0.5, 0.0, 16.0)
    assert (canvas[:16] == 114).all() and (canvas[48:] == 114).all() and (canvas[16:48] == 90).all()
    odd, placed = letterbox(np.zeros((61, 100, 3), np.uint8), (64, 64))
    assert odd.shape == (64, 64, 3) and placed.pad_y == 12.0  # 25 px of padding: 12 above, 13 below
    assert (odd[:12] == 114).all() and (odd[51:] == 114).all() and (odd[12:51] == 0).all()
    box = np.array([[0.1, 0.2, 0.5, 0.9]], np.float32)
    np.testing.assert_allclose(placed.to_frame(placed.from_frame(box)), box, atol=1e-6)


def test_wrong_layouts_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    classifier = yb.build_onnx(tmp_path / "cls.onnx", "v8", np.zeros((1, 10), np.float32))
    with pytest.raises(ModelFormatError, match=r"match any YOLO layout.*\(1, 4\+classes, N\)"):
        detector(classifier)
    # a segmentation head: 4 + 2 classes + 32 mask coefficients rows, but 2 class names
    seg = yb.build_onnx(tmp_path / "seg.onnx", "v8", np.zeros((38, 100), np.float32), extra_outputs=1)
    with pytest.raises(ModelFormatError, match="with 2 class names"):
        detector(seg, failure_classes=["spaghetti"])
    v8 = yb.build_onnx(tmp_path / "v8.onnx", "v8")
    with pytest.raises(ModelFormatError, match="layout v5"):
        detector(v8, layout="v5", failure_classes=["spaghetti"])
    with pytest.raises(ModelFormatError, match=r"no class named 'blob'.*'nozzle', 'spaghetti'"):
        detector(v8, failure_classes=["blob"])
    nameless = yb.build_onnx(tmp_path / "nameless.onnx", "v8", names=None)
    with pytest.raises(ModelFormatError, match=r"no 'names' metadata; set detector\.class_names"):
        detector(nameless, failure_classes=["spaghetti"])
    assert detector(nameless, failure_classes=[0]).analyse(frame()).score == pytest.approx(0.9)
    named = detector(nameless, class_names=["spaghetti", "nozzle"], failure_classes=["spaghetti"])
    assert named.analyse(frame()).score == pytest.approx(0.9)
    with pytest.raises(ModelFormatError, match="does not exist"):
        detector(tmp_path / "missing.onnx")


def test_config_selects_the_plugin_by_type() -> None:
    config = LayerwatchConfig.model_validate({"detector": {"type": "yolo", "failure_classes": ["fail", 2]}})
    assert isinstance(config.detector, YoloDetectorConfig) and config.detector.failure_classes == ["fail", 2]
    assert not isinstance(LayerwatchConfig.model_validate({"detector": {"type": "onnx"}}).detector,
                          YoloDetectorConfig)  # fmt: skip
    with pytest.raises(ValueError, match="iou"):
        LayerwatchConfig.model_validate({"detector": {"type": "yolo", "iou": 2}})


def test_false_alarm_box_becomes_a_persisted_ignore_region(exports: dict[str, Path], tmp_path: Path) -> None:
    from appliance.service.camera_answers import CameraAnswers

    det = detector(exports["v8"], failure_classes=["spaghetti"], uncertain_band=0.0)
    scoring = det.scoring_for(None)
    scoring.learner.camera = "printer"
    answers = CameraAnswers("printer", scoring.learner, tmp_path)
    first = det.analyse(frame(), scoring)
    answers.observe(1, first.features, frame(), voted=True)
    answers.on_alert("alert-1")
    assert answers.answer_alert("alert-1", "ok") == 1
    # both failure boxes of that frame (A and C) are now ignored: nothing left to alarm on
    assert det.analyse(frame(), scoring).score == 0.0
    # after a restart: the answers file gives the same ignore regions back
    stored = CameraLearner.load(tmp_path, "printer", det.fingerprint())
    assert stored is not None
    restarted = det.scoring_for(None, stored)
    assert restarted.learner.summary()["ignore_regions"] == 2
    assert det.analyse(frame(), restarted).verdict is Verdict.OK
    # a real failure answered on a frame with the same boxes lifts the regions again
    answers.label_frames([answers.observe(2, first.features, frame(), voted=True)], "failure", "user")
    assert det.analyse(frame(), scoring).score == pytest.approx(0.9)


def test_calibration_frames_set_the_camera_confidence_floor(exports: dict[str, Path]) -> None:
    det = detector(exports["v8"], failure_classes=["spaghetti"], uncertain_band=0.0, floor_margin=0.05)
    calibration = build_calibration(det, "printer", [frame(), frame(120)])
    scoring = det.scoring_for(calibration)
    assert scoring.threshold == pytest.approx(0.95, abs=1e-3)  # 0.9 on the normal frames + 0.05
    result = det.analyse(frame(), scoring)
    assert result.score == pytest.approx(0.9) and result.verdict is Verdict.OK
    # a failure calibration frame keeps the floor under its own confidence
    with_failure = det.scoring_for(build_calibration(det, "printer", [frame()], [frame()]))
    assert with_failure.threshold < 0.9


def test_evidence_draws_boxes_and_confidences_on_the_full_frame(exports: dict[str, Path]) -> None:
    from appliance.actions.evidence import draw_evidence

    det = detector(exports["v8"], failure_classes=["spaghetti"])
    big = np.full((640, 1280, 3), 90, np.uint8)
    drawn = draw_evidence(big, det.analyse(cv2.resize(big, (128, 64))))
    a = yb.expected_boxes(("A",), FRAME)[0]
    x1, y1 = int(a[2] * 1280), int(a[3] * 640)
    assert tuple(drawn[y1 - 1, (int(a[0] * 1280) + x1) // 2]) == (0, 255, 255)  # yellow bottom edge
    tag = drawn[int(a[1] * 640) - 20 : int(a[1] * 640), int(a[0] * 1280) : int(a[0] * 1280) + 40]
    assert (tag == 0).all(axis=2).any() and (tag == (0, 255, 255)).all(axis=2).any()  # "0.90" on yellow


def test_two_stage_runs_the_box_model_only_on_suspect_frames(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    from appliance.config.model import DetectorConfig
    from appliance.config.yolo import SecondOpinionConfig
    from appliance.detector import TwoStageDetector
    from tests.tflite_builder import write_bundle

    manifest = write_bundle(tmp_path / "bundle")
    grey, red = frame(128), np.zeros((64, 128, 3), np.uint8)
    red[..., 2] = 230
    alone = load_detector(DetectorConfig(model=manifest, type="onnx")).analyse(red)
    for role in ("decides", "boxes"):
        second = SecondOpinionConfig(
            model=exports["v8"], failure_classes=["nozzle"], threshold=0.97, role=role
        )
        det = load_detector(DetectorConfig(model=manifest, type="onnx", second_opinion=second))
        assert isinstance(det, TwoStageDetector) and det.role == role
        normal = det.analyse(grey)
        assert normal.verdict is Verdict.OK and normal.boxes == () and det.box_runs == 0
        suspect = det.analyse(red)
        assert det.box_runs == 1 and det.frames == 2
        assert [round(b.score, 2) for b in suspect.boxes] == [0.95, 0.3]
        assert suspect.features is not None and suspect.heatmap is not None  # the prototype's learner and map
        if role == "decides":  # the box model decides (nozzle 0.95 < its threshold 0.97)
            assert suspect.score == pytest.approx(0.95) and suspect.verdict is Verdict.UNCERTAIN
        else:  # the prototype model's verdict stands; the boxes are evidence
            assert suspect.score == pytest.approx(alone.score) and suspect.verdict is alone.verdict


def test_second_opinion_role_defaults_to_boxes_and_rejects_others() -> None:
    from pydantic import ValidationError

    from appliance.config.model import DetectorConfig

    assert DetectorConfig.model_validate({"second_opinion": {}}).second_opinion.role == "boxes"  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="role"):
        DetectorConfig.model_validate({"second_opinion": {"role": "veto"}})


def _reference_decode(raw: np.ndarray, confidence: float, iou: float) -> np.ndarray:
    """A plain numpy decode + greedy NMS of a one-class v8 output (1, 5, N): (M, 5) canvas x0 y0 x1 y1 s."""
    cx, cy, w, h, s = raw[0]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, s], 1)
    boxes = boxes[boxes[:, 4] >= confidence]
    boxes = boxes[np.argsort(-boxes[:, 4])]
    kept: list[np.ndarray] = []
    for box in boxes:
        if all(_iou(box, k) <= iou for k in kept):
            kept.append(box)
    return np.array(kept, np.float32).reshape(-1, 5)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_the_shipped_box_model_decodes_like_a_reference(tmp_path: Path) -> None:
    from appliance.detector.bundle import default_models_dir
    from appliance.detector.runtime import open_tensor_backend

    path = default_models_dir() / "layerwatch-boxes-int8.onnx"
    if not path.is_file():
        pytest.skip("no shipped box model")
    det = load_detector(YoloDetectorConfig(confidence=0.05, iou=0.45, max_boxes=100))
    assert isinstance(det, YoloDetector) and det.path == path
    assert det.layout.kind == "v8" and det.names == {0: "failure"} and det.failure_ids == [0]
    # a synthetic "print" with a tangle of thin lines on a dark bed, in a 4:3 frame
    rng = np.random.default_rng(0)
    image = np.full((480, 640, 3), 40, np.uint8)
    for _ in range(60):
        pts = rng.integers([200, 220], [460, 420], size=(2, 2))
        cv2.line(image, tuple(int(v) for v in pts[0]), tuple(int(v) for v in pts[1]), (200, 200, 210), 2)
    rows = det.boxes(image)
    canvas, placed = letterbox(image[..., ::-1], det.input_size)
    raw = open_tensor_backend(path, "onnx").run((canvas.astype(np.float32) / 255).transpose(2, 0, 1)[None])
    reference = _reference_decode(raw[0], 0.05, 0.45)
    assert len(rows) == len(reference)
    np.testing.assert_allclose(rows[:, 4], reference[:, 4], atol=1e-6)
    # int8 scores tie; which of two tied boxes NMS keeps first is the implementation's choice, so the
    # boxes are compared where the score is unique
    values, counts = np.unique(np.round(reference[:, 4], 6), return_counts=True)
    unique = np.isin(np.round(reference[:, 4], 6), values[counts == 1])
    assert unique.sum() >= len(reference) // 2
    np.testing.assert_allclose(rows[unique, :4], placed.to_frame(reference[unique, :4]), atol=1e-5)
    result = det.analyse(image)
    assert result.score == pytest.approx(float(rows[:, 4].max(initial=0.0)))


def test_average_precision_counts_one_match_per_truth_box() -> None:
    from appliance.training.box_eval import average_precision

    truth = {0: np.array([[0.1, 0.1, 0.5, 0.5]], np.float32)}
    hit, miss = np.array([0.1, 0.1, 0.5, 0.52]), np.array([0.6, 0.6, 0.9, 0.9])
    assert average_precision([(0, 0.9, hit)], truth)[0] == pytest.approx(1.0)
    assert average_precision([(0, 0.9, miss), (0, 0.8, hit)], truth)[0] == pytest.approx(0.5)
    assert average_precision([(0, 0.9, hit), (0, 0.8, hit)], truth)[0] == pytest.approx(1.0)  # a duplicate
