"""The inference backends and the detector on real models: a tiny TFLite/ONNX pair built by
:mod:`tests.tflite_builder`, and the shipped model in ``models/``."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.config.model import DetectorConfig
from appliance.detector import load_detector
from appliance.detector.base import Verdict
from appliance.detector.bundle import load_bundle
from appliance.detector.runtime import (
    EMBEDDING_NAME,
    PATCHES_NAME,
    LiteRtBackend,
    OnnxBackend,
    _import_litert_interpreter,
    open_backend,
)
from appliance.errors import BackendUnavailableError, DetectorError, ModelFormatError
from tests.tflite_builder import (
    DEFAULT_GRID,
    DEFAULT_SIZE,
    ONNX_FILE,
    TFLITE_FILE,
    build_onnx,
    build_tflite,
    reference_embeddings,
    write_bundle,
)

litert_interpreter = pytest.importorskip("ai_edge_litert.interpreter")

ROWS, COLS = DEFAULT_GRID
WIDTH, HEIGHT = DEFAULT_SIZE


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle(tmp_path_factory.mktemp("bundle")).parent


@pytest.fixture(scope="module")
def manifest(bundle_dir: Path) -> Path:
    return bundle_dir / "layerwatch.json"


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    gradient = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    gradient[..., 0] = np.linspace(0, 255, WIDTH, dtype=np.uint8)[np.newaxis]
    gradient[..., 2] = np.linspace(255, 0, HEIGHT, dtype=np.uint8)[:, np.newaxis]
    return [
        noise,
        gradient,
        np.full((HEIGHT, WIDTH, 3), 128, np.uint8),
        np.zeros((HEIGHT, WIDTH, 3), np.uint8),
    ]


def _frame_bgr(bgr: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A 640x480 BGR frame of one colour with a little noise."""
    rng = np.random.default_rng(seed)
    frame = np.empty((480, 640, 3), np.int16)
    frame[:] = bgr
    frame += rng.integers(-8, 9, frame.shape, dtype=np.int16)
    return np.clip(frame, 0, 255).astype(np.uint8)


# -- the backends on the tiny model -----------------------------------------------------------------


def test_litert_backend_matches_onnx_and_reference(bundle_dir: Path) -> None:
    litert = LiteRtBackend(bundle_dir / TFLITE_FILE, "fp32")
    onnx = OnnxBackend(bundle_dir / ONNX_FILE, "fp32")
    assert litert.name == "litert/fp32"
    assert onnx.name == "onnxruntime/fp32"
    for image in _images():
        emb_l, patches_l = litert.embed(image)
        emb_o, patches_o = onnx.embed(image)
        assert emb_l.shape == emb_o.shape == (3,)
        assert patches_l.shape == patches_o.shape == (ROWS * COLS, 3)
        assert emb_l.dtype == patches_l.dtype == np.float32
        assert np.allclose(emb_l, emb_o, atol=1e-5)
        assert np.allclose(patches_l, patches_o, atol=1e-5)
        ref_emb, ref_patches = reference_embeddings(image, DEFAULT_GRID)
        assert np.allclose(emb_l, ref_emb, atol=1e-5)
        assert np.allclose(patches_l, ref_patches, atol=1e-5)
    # L2-normalised, patches row-major: the top-left cell of the gradient is blue, the top-right red-ish
    emb, patches = litert.embed(_images()[1])
    assert np.isclose(np.linalg.norm(emb), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(patches, axis=1), 1.0, atol=1e-5)
    assert patches[0, 2] > patches[0, 0] and patches[COLS - 1, 0] > patches[0, 0]


def test_litert_matches_signature_prefixed_output_names(tmp_path: Path) -> None:
    """Converters name outputs "serving_default_<name>:0"; "patch_embeddings" contains "_" itself."""
    names = ("serving_default_embedding:0", "serving_default_patch_embeddings:0")
    backend = LiteRtBackend(build_tflite(tmp_path / "prefixed.tflite", output_names=names), "fp32")
    image = _images()[0]
    emb, patches = backend.embed(image)
    ref_emb, ref_patches = reference_embeddings(image, DEFAULT_GRID)
    assert emb.shape == (3,) and patches.shape == (ROWS * COLS, 3)
    assert np.allclose(emb, ref_emb, atol=1e-5) and np.allclose(patches, ref_patches, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (EMBEDDING_NAME, EMBEDDING_NAME),
        (PATCHES_NAME, PATCHES_NAME),
        ("serving_default_embedding:0", EMBEDDING_NAME),
        ("serving_default_patch_embeddings:0", PATCHES_NAME),
        ("patch_embeddings:0", PATCHES_NAME),
        ("StatefulPartitionedCall:0", "StatefulPartitionedCall"),
        ("embeddings", "embeddings"),
    ],
)
def test_litert_output_name_matching(name: str, expected: str) -> None:
    assert LiteRtBackend._base_name(name) == expected


def test_contract_breaking_model_is_refused(tmp_path: Path) -> None:
    tflite = build_tflite(tmp_path / "bad.tflite", output_names=("features", "patch_features"))
    with pytest.raises(ModelFormatError, match=r"contract.*'embedding'.*'patch_embeddings'.*features"):
        LiteRtBackend(tflite, "fp32")
    onnx = build_onnx(tmp_path / "bad.onnx", output_names=("features", "patch_features"))
    with pytest.raises(ModelFormatError, match=r"'embedding'.*'patch_embeddings'.*features"):
        OnnxBackend(onnx, "fp32")
    # through the detector: the problem is reported, whatever the error class (a DetectorError)
    manifest = write_bundle(tmp_path)
    data = json.loads(manifest.read_text())
    data["variants"] = [{"file": "bad.tflite", "format": "litert", "precision": "fp32"}]
    manifest.write_text(json.dumps(data))
    with pytest.raises(DetectorError, match=r"bad\.tflite.*contract"):
        load_detector(DetectorConfig(model=manifest, type="litert"))


def test_missing_or_unreadable_model_file(tmp_path: Path, bundle_dir: Path) -> None:
    with pytest.raises(ModelFormatError, match="does not exist"):
        load_bundle(tmp_path / "nowhere.tflite")
    with pytest.raises(ModelFormatError, match="LiteRT cannot load it"):
        open_backend(tmp_path / "nowhere.tflite", "litert", "fp32")
    with pytest.raises(ModelFormatError, match="ONNX Runtime cannot load it"):
        open_backend(tmp_path / "nowhere.onnx", "onnx", "fp32")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer at all" * 8)
    with pytest.raises(ModelFormatError, match="LiteRT cannot load it"):
        LiteRtBackend(garbage, "fp32")
    with pytest.raises(ModelFormatError, match="unknown model format"):
        open_backend(bundle_dir / TFLITE_FILE, "tensorrt", "fp32")


# -- the LiteRT import fallback ---------------------------------------------------------------------


def _hide_ai_edge_litert(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)


def test_falls_back_to_tflite_runtime(monkeypatch: pytest.MonkeyPatch, bundle_dir: Path) -> None:
    created: list[object] = []

    class FakeTfliteInterpreter(litert_interpreter.Interpreter):
        def __init__(self, *args: object, **kwargs: object) -> None:
            created.append(kwargs)
            super().__init__(*args, **kwargs)

    package = types.ModuleType("tflite_runtime")
    module = types.ModuleType("tflite_runtime.interpreter")
    module.Interpreter = FakeTfliteInterpreter  # type: ignore[attr-defined]
    package.interpreter = module  # type: ignore[attr-defined]
    _hide_ai_edge_litert(monkeypatch)
    monkeypatch.setitem(sys.modules, "tflite_runtime", package)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", module)

    assert _import_litert_interpreter() is FakeTfliteInterpreter
    backend = LiteRtBackend(bundle_dir / TFLITE_FILE, "fp32", threads=2)
    assert isinstance(backend._interpreter, FakeTfliteInterpreter)
    assert created == [{"model_path": str(bundle_dir / TFLITE_FILE), "num_threads": 2}]
    image = _images()[0]
    assert np.allclose(backend.embed(image)[0], reference_embeddings(image, DEFAULT_GRID)[0], atol=1e-5)


def test_no_litert_runtime_at_all(monkeypatch: pytest.MonkeyPatch, manifest: Path, bundle_dir: Path) -> None:
    _hide_ai_edge_litert(monkeypatch)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install ai-edge-litert.*tflite-runtime"):
        _import_litert_interpreter()
    with pytest.raises(BackendUnavailableError):
        LiteRtBackend(bundle_dir / TFLITE_FILE, "fp32")
    with pytest.raises(DetectorError, match="ai-edge-litert"):
        load_detector(DetectorConfig(model=manifest, type="litert"))
    # auto skips the variant it cannot run
    assert load_detector(DetectorConfig(model=manifest, type="auto")).backend_name == "onnxruntime/fp32"


# -- bundle and detector on the tiny model ----------------------------------------------------------


def test_load_bundle_manifest_and_variant(manifest: Path, bundle_dir: Path) -> None:
    bundle = load_bundle(manifest)
    assert bundle.input_size == DEFAULT_SIZE and bundle.patch_grid == DEFAULT_GRID
    assert [(v.format, v.path.name) for v in bundle.variants] == [
        ("onnx", ONNX_FILE),
        ("litert", TFLITE_FILE),
    ]
    assert bundle.prototypes["ok"].shape[1] == bundle.prototypes["failure"].shape[1] == 3

    only = load_bundle(bundle_dir / TFLITE_FILE)
    assert [(v.format, v.precision, v.path.name) for v in only.variants] == [("litert", "fp32", TFLITE_FILE)]
    assert only.manifest_path == manifest and only.fingerprint() == bundle.fingerprint()
    detector = load_detector(DetectorConfig(model=bundle_dir / TFLITE_FILE))
    assert detector.backend_name == "litert/fp32"


@pytest.mark.parametrize(
    ("kind", "backends"),
    [
        ("litert", {"litert/fp32"}),
        ("onnx", {"onnxruntime/fp32"}),
        ("auto", {"onnxruntime/fp32"}),  # the first listed variant, never a timing race's winner
    ],
)
def test_detector_per_backend(manifest: Path, kind: str, backends: set[str]) -> None:
    detector = load_detector(DetectorConfig(model=manifest, type=kind))
    assert detector.backend_name in backends
    assert detector.backend.runtime == detector.backend_name.split("/")[0]
    assert detector.input_size == DEFAULT_SIZE

    red = detector.analyse(_frame_bgr((40, 40, 200), seed=1))  # BGR: red-ish
    grey = detector.analyse(_frame_bgr((110, 110, 110), seed=2))
    assert red.verdict == Verdict.FAILURE
    assert grey.verdict == Verdict.OK
    assert 0.0 <= grey.score < red.score <= 1.0
    for detection in (red, grey):
        assert detection.heatmap is not None and detection.heatmap.shape == (ROWS, COLS)
        assert detection.latency_ms > 0


# -- the shipped model ------------------------------------------------------------------------------


def test_shipped_model_defaults(monkeypatch: pytest.MonkeyPatch, shipped_model: Path) -> None:
    monkeypatch.delenv("LAYERWATCH_MODELS_DIR", raising=False)
    manifest = json.loads(shipped_model.read_text())
    detector = load_detector(DetectorConfig())
    # auto runs the first listed variant (the int8 ONNX file the model card measures), at every start
    first = manifest["variants"][0]
    assert (first["format"], first["precision"]) == ("onnx", "int8")
    assert detector.backend_name == "onnxruntime/int8"
    assert detector.input_size == tuple(manifest["input_size"])
    rng = np.random.default_rng(5)
    frame = np.full((480, 640, 3), 60, np.uint8)
    frame[200:320, 250:420] = (30, 160, 220)
    frame = np.clip(frame.astype(np.int16) + rng.integers(-10, 11, frame.shape), 0, 255).astype(np.uint8)
    detection = detector.analyse(frame)
    assert 0.0 <= detection.score <= 1.0
    assert detection.heatmap is not None and detection.heatmap.shape == tuple(manifest["patch_grid"])
    assert detection.latency_ms > 0


def test_auto_never_picks_by_speed(manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera's scores must not depend on which runtime won a start-up race: with ``auto`` the first listed
    variant runs at every start, however much faster another is, and the remembered choice agrees."""
    import appliance.detector.runtime as runtime

    calls: list[str] = []
    real_open = runtime.open_backend

    def counting_open(path: Path, fmt: str, precision: str, threads: int):  # type: ignore[no-untyped-def]
        calls.append(fmt)
        return real_open(path, fmt, precision, threads)

    monkeypatch.setattr("appliance.detector.prototype_detector.open_backend", counting_open)
    names = set()
    for _ in range(3):
        detector = load_detector(DetectorConfig(model=manifest, type="auto"), cache_dir=tmp_path)
        names.add(detector.backend_name)
    assert names == {"onnxruntime/fp32"}
    assert calls == ["onnx", "onnx", "onnx"]  # nothing else was opened or timed
    assert json.loads((tmp_path / "backend.json").read_text())["file"] == ONNX_FILE


def test_the_shipped_models_verdicts_are_the_same_at_every_start(shipped_model: Path, tmp_path: Path) -> None:
    """Two starts with ``auto`` (a fresh state folder, then the remembered choice) score real in-chamber
    frames of the dev data identically: no timing race decides which runtime a camera's scores come from."""
    from appliance.training.data import DEFAULT_DATA

    chamber = DEFAULT_DATA / "images" / "chamber_centauri"
    frames = sorted(chamber.rglob("*.jpg"))[:6] if chamber.is_dir() else []
    if not frames:
        pytest.skip(f"no dev frames in {DEFAULT_DATA}")
    images = [cv2.imread(str(p)) for p in frames]
    runs = []
    for _ in range(2):
        detector = load_detector(DetectorConfig(type="auto"), cache_dir=tmp_path)
        runs.append([(detector.backend_name, detector.analyse(image)) for image in images])
    assert {name for run in runs for name, _ in run} == {"onnxruntime/int8"}
    for (_, first), (_, second) in zip(runs[0], runs[1], strict=True):
        assert first.verdict == second.verdict and first.score == second.score
