"""From a trained :class:`EmbeddingNet` to the shipped bundle: ONNX fp32 + int8, prototypes, manifest."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from appliance.training.backbone import EmbeddingNet
from appliance.training.data import CHAMBER, Sample, load_rgb, to_input
from appliance.training.export import bench, export_onnx, quantize_int8, session
from appliance.training.heads import fit_heads, head_training_set
from appliance.training.prototypes import kmeans_prototypes
from appliance.training.tflite import bench_tflite, export_tflite, quantize_tflite

logger = logging.getLogger(__name__)

NAME = "layerwatch-lite0"
FP32_FILE = "layerwatch-fp32.onnx"
INT8_FILE = "layerwatch-int8.onnx"
TFLITE_FP32_FILE = "layerwatch-fp32.tflite"
TFLITE_INT8_FILE = "layerwatch-int8.tflite"
PROTOTYPES_FILE = "layerwatch.prototypes.npz"


def embedder(
    model: Path, input_size: tuple[int, int]
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """RGB frame -> (embedding (D,), patches (P, D)) through an exported ONNX model (2 threads)."""
    sess = session(model, threads=2)

    def embed(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, p = sess.run(None, {"image": to_input(rgb, input_size)[np.newaxis]})
        return e[0], p[0]

    return embed


def embed_files(
    model: Path, samples: list[Sample], input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (N, D), patches (N, P, D)) of ``samples`` through an exported model."""
    embed = embedder(model, input_size)
    embs, patches = zip(*(embed(load_rgb(sample.path)) for sample in samples), strict=True)
    return np.stack(embs), np.stack(patches)


def calibration_frames(
    samples: list[Sample], input_size: tuple[int, int], count: int, seed: int
) -> list[np.ndarray]:
    """Real frames for int8 calibration: half fixed-camera frames, half web ok/failure photos."""
    rng = np.random.default_rng(seed)
    cam = [s for s in samples if s.source in ("bedcam_p1", "webcam_scythe", CHAMBER)]
    web = [s for s in samples if s.source.startswith("web_") and s.label in ("ok", "failure")]
    chosen = [cam[i] for i in rng.choice(len(cam), count // 2, replace=False)]
    chosen += [web[i] for i in rng.choice(len(web), count - count // 2, replace=False)]
    return [to_input(load_rgb(s.path), input_size) for s in chosen]


def order_variants(variants: list[tuple[dict[str, str], float]]) -> list[tuple[dict[str, str], float]]:
    """The int8 ONNX file first (the one the dev figures are measured with: ``auto`` runs the first variant
    a device can load, whatever the timings), then the rest fastest first (as measured here on one core)."""
    ordered = sorted(variants, key=lambda pair: pair[1])
    tuned = next((pair for pair in ordered if pair[0]["file"] == INT8_FILE), None)
    if tuned is not None:
        ordered.remove(tuned)
        ordered.insert(0, tuned)
    return ordered


def write_heads(
    out: Path,
    samples: list[Sample],
    size: tuple[int, int],
    grid: tuple[int, int],
    seed: int,
    prototypes_per_class: int = 32,
) -> np.ndarray:
    """Fit the prototypes and failure heads on ``out``'s int8 ONNX model's embeddings of ``samples`` and
    write ``out/layerwatch.prototypes.npz``; returns the ok prototypes. Rerunning it on a bundle refits only
    its heads (``python -m appliance.training.pipeline --heads DIR``)."""
    int8 = out / INT8_FILE
    labelled = [s for s in samples if s.label in ("ok", "failure")]
    embs, patches = embed_files(int8, labelled, size)
    labels = np.array([s.label for s in labelled])
    ok = kmeans_prototypes(embs[labels == "ok"], prototypes_per_class, seed)
    failure = kmeans_prototypes(embs[labels == "failure"], prototypes_per_class, seed)
    head_w, head_b = fit_heads(*head_training_set(labelled, embs, patches, embedder(int8, size), grid, seed))
    np.savez_compressed(out / PROTOTYPES_FILE, ok=ok, failure=failure, head_w=head_w, head_b=head_b)
    return ok


def write_bundle(
    net: EmbeddingNet,
    samples: list[Sample],
    out: Path,
    *,
    seed: int,
    threshold: float,
    uncertain_band: float,
    prototypes_per_class: int = 32,
    extra: dict[str, Any] | None = None,
    ship_tflite_fp32: bool = True,
) -> dict[str, Any]:
    """Export, quantize, build prototypes, benchmark, and write ``out/layerwatch.json``.

    ``ship_tflite_fp32=False`` measures the float LiteRT file but leaves it out of the bundle: 13 MB that
    no device would pick over the int8 files."""
    out.mkdir(parents=True, exist_ok=True)
    size = net.input_size
    fp32, int8 = out / FP32_FILE, out / INT8_FILE
    export_onnx(net, fp32)
    frames = calibration_frames(samples, size, 128, seed)
    quantize_int8(fp32, int8, frames)
    export_tflite(net, out / TFLITE_FP32_FILE)
    quantize_tflite(out / TFLITE_FP32_FILE, out / TFLITE_INT8_FILE, frames)
    ok = write_heads(out, samples, size, net.grid, seed, prototypes_per_class)
    variants = [
        ({"file": INT8_FILE, "format": "onnx", "precision": "int8"}, bench(int8, size)),
        ({"file": FP32_FILE, "format": "onnx", "precision": "fp32"}, bench(fp32, size)),
        (
            {"file": TFLITE_INT8_FILE, "format": "litert", "precision": "int8"},
            bench_tflite(out / TFLITE_INT8_FILE, size),
        ),
        (
            {"file": TFLITE_FP32_FILE, "format": "litert", "precision": "fp32"},
            bench_tflite(out / TFLITE_FP32_FILE, size),
        ),
    ]
    variants = order_variants(variants)
    latency = {f"{v['format']}/{v['precision']}": round(ms, 2) for v, ms in variants}
    if not ship_tflite_fp32:
        variants = [(v, ms) for v, ms in variants if v["file"] != TFLITE_FP32_FILE]
        (out / TFLITE_FP32_FILE).unlink()
    logger.info("latency on one core (ms, median): %s", latency)
    manifest: dict[str, Any] = {
        "name": NAME,
        "contract": 1,
        "input_size": [size[0], size[1]],
        "patch_grid": [net.grid[0], net.grid[1]],
        "threshold": threshold,
        "uncertain_band": uncertain_band,
        "prototypes": PROTOTYPES_FILE,
        "variants": [v for v, _ in variants],
        "training": {
            "seed": seed,
            "latency_ms_one_core": latency,
            "embedding_dim": int(ok.shape[1]),
            **(extra or {}),
        },
    }
    (out / "layerwatch.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
