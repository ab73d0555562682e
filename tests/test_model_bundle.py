"""The shipped model bundle in models/ follows the Layerwatch model contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from appliance.detector.bundle import load_bundle
from appliance.detector.runtime import open_backend
from appliance.errors import BackendUnavailableError

MODELS = Path(__file__).resolve().parents[1] / "models"
MANIFEST = MODELS / "layerwatch.json"


@pytest.fixture(scope="module")
def bundle():  # type: ignore[no-untyped-def]
    return load_bundle(MANIFEST)


def _frame(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = np.full((height, width, 3), 60, np.uint8)
    image[height // 2 :, :, :] = 120  # a "bed"
    return np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)


def test_manifest_is_contract_1_and_lists_the_fastest_first(bundle) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(MANIFEST.read_text())
    assert data["contract"] == 1
    assert any(v["precision"] == "int8" for v in data["variants"])
    assert {v["format"] for v in data["variants"]} <= {"onnx", "litert"}
    assert 0.0 < bundle.threshold < 1.0 and 0.0 <= bundle.uncertain_band < 0.5


def test_variant_files_exist_and_int8_is_small(bundle) -> None:  # type: ignore[no-untyped-def]
    for variant in bundle.variants:
        assert variant.path.is_file(), variant.path
        if variant.precision == "int8":
            assert variant.path.stat().st_size <= 8 * 1024 * 1024


def test_prototypes_match_the_embedding(bundle) -> None:  # type: ignore[no-untyped-def]
    ok, failure = bundle.prototypes["ok"], bundle.prototypes["failure"]
    assert ok.ndim == failure.ndim == 2 and ok.shape[1] == failure.shape[1]
    assert np.allclose(np.linalg.norm(ok, axis=1), 1.0, atol=1e-3)
    assert np.allclose(np.linalg.norm(failure, axis=1), 1.0, atol=1e-3)


def test_every_variant_runs_and_outputs_follow_the_contract(bundle) -> None:  # type: ignore[no-untyped-def]
    width, height = bundle.input_size
    rows, cols = bundle.patch_grid
    dim = bundle.prototypes["ok"].shape[1]
    outputs = {}
    for variant in bundle.variants:
        try:
            backend = open_backend(variant.path, variant.format, variant.precision)
        except BackendUnavailableError:  # LiteRT is an optional extra
            continue
        embedding, patches = backend.embed(_frame(width, height))
        assert embedding.shape == (dim,) and embedding.dtype == np.float32
        assert patches.shape == (rows * cols, dim)
        assert np.isclose(np.linalg.norm(embedding), 1.0, atol=1e-3)
        assert np.allclose(np.linalg.norm(patches, axis=1), 1.0, atol=1e-3)
        outputs[(variant.format, variant.precision)] = embedding
    assert outputs, "no variant could be run"
    reference = outputs.get(("onnx", "fp32"))
    if reference is not None:
        for key, embedding in outputs.items():
            # every format and precision computes (nearly) the same embedding as the float ONNX model
            assert float(embedding @ reference) > 0.9, key
