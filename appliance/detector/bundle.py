"""The model bundle: a manifest (``models/layerwatch.json``) naming the variants of one model.

Example manifest::

    {
      "name": "layerwatch-lite0", "contract": 1,
      "input_size": [224, 224],            # width, height in px
      "patch_grid": [7, 7],                # rows, cols of patch_embeddings
      "threshold": 0.5, "uncertain_band": 0.1,   # the default camera's, before its learner sets them
      "prototypes": "layerwatch.prototypes.npz",   # generic ok/failure support embeddings
      "variants": [
        {"file": "layerwatch-int8.onnx", "format": "onnx", "precision": "int8"},
        {"file": "layerwatch-fp32.onnx", "format": "onnx", "precision": "fp32"}
      ]
    }

``detector.model`` may name the manifest or one variant file; a variant file is matched to the
manifest in its folder that lists it, so ``layerwatch eval --model models/layerwatch-fp32.onnx``
runs exactly that file with the bundle's prototypes and heads. Keys this contract does not read (an
older bundle's ``scoring`` table) are ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.errors import ModelFormatError

MANIFEST_NAME = "layerwatch.json"
_FORMATS = {".onnx": "onnx", ".tflite": "litert"}


@dataclass(frozen=True)
class ModelVariant:
    path: Path
    format: str
    precision: str


@dataclass
class ModelBundle:
    name: str
    input_size: tuple[int, int]
    patch_grid: tuple[int, int]
    threshold: float
    uncertain_band: float
    variants: list[ModelVariant]
    prototypes: dict[str, np.ndarray]
    manifest_path: Path | None = None

    def fingerprint(self) -> str:
        """Identifies the embedding space: calibrations made with another model are refused."""
        digest = hashlib.sha256(self.name.encode())
        proto = self.prototypes.get("ok")
        if proto is not None:
            digest.update(np.ascontiguousarray(proto[:4], dtype=np.float32).tobytes()[:4096])
        return digest.hexdigest()[:16]


def default_models_dir() -> Path:
    """Where the shipped model lives: ``$LAYERWATCH_MODELS_DIR``, the checkout's ``models/``, or the
    installed ``share/layerwatch/models``."""
    candidates = []
    if os.environ.get("LAYERWATCH_MODELS_DIR"):
        candidates.append(Path(os.environ["LAYERWATCH_MODELS_DIR"]))
    candidates += [
        Path(__file__).resolve().parents[2] / "models",
        Path(sys.prefix) / "share" / "layerwatch" / "models",
        Path("/usr/share/layerwatch/models"),
    ]
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise ModelFormatError(
        "no shipped model found (looked in " + ", ".join(str(c) for c in candidates) + "); set detector.model"
    )


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: cannot read model manifest: {exc}") from exc
    if data.get("contract") != 1:
        raise ModelFormatError(f"{path}: unsupported model contract {data.get('contract')!r} (expected 1)")
    return data


def _find_manifest_for(model_file: Path) -> Path | None:
    for manifest in sorted(model_file.parent.glob("*.json")):
        try:
            data = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and any(v.get("file") == model_file.name for v in data.get("variants", [])):
            return manifest
    return None


def load_bundle(model: Path | None = None) -> ModelBundle:
    """Load the manifest (and prototypes) for ``model``: a manifest, a variant file, or None for the
    shipped model. Naming a variant file restricts the bundle to that one file."""
    only: Path | None = None
    if model is None:
        manifest_path = default_models_dir() / MANIFEST_NAME
    elif model.suffix == ".json":
        manifest_path = model
    else:
        if not model.is_file():
            raise ModelFormatError(f"{model}: model file does not exist")
        if model.suffix not in _FORMATS:
            raise ModelFormatError(f"{model}: not a model file (.onnx, .tflite or a .json manifest)")
        found = _find_manifest_for(model)
        if found is None:
            raise ModelFormatError(f"{model}: no manifest (*.json) beside it lists this file")
        manifest_path, only = found, model.resolve()
    data = _read_manifest(manifest_path)
    base = manifest_path.parent
    variants = [
        ModelVariant(
            base / v["file"], v.get("format", _FORMATS.get(Path(v["file"]).suffix, "?")), v["precision"]
        )
        for v in data["variants"]
    ]
    if only is not None:
        variants = [v for v in variants if v.path.resolve() == only]
    prototypes: dict[str, np.ndarray] = {}
    if data.get("prototypes"):
        with np.load(base / data["prototypes"]) as npz:
            prototypes = {k: npz[k].astype(np.float32) for k in npz.files}
    return ModelBundle(
        name=data["name"],
        input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
        patch_grid=(int(data["patch_grid"][0]), int(data["patch_grid"][1])),
        threshold=float(data.get("threshold", 0.5)),
        uncertain_band=float(data.get("uncertain_band", 0.1)),
        variants=variants,
        prototypes=prototypes,
        manifest_path=manifest_path,
    )
