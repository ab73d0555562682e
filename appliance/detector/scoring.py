"""Prototype scoring v2: how embeddings become a failure score and a heatmap.

A frame is compared with this camera's support sets:

* **normal**: the camera's calibration frames (every user can give them), both as global embeddings and
  as a per-cell patch bank; without a calibration, the model's generic ``ok`` prototypes;
* **failure**: the camera's failure examples if the user gave some, plus the model's generic
  ``failure`` prototypes.

Three pieces of evidence, each a distance difference in cosine units:

* ``anomaly``: per grid cell, the distance to the nearest patch of the normal frames at the same or a
  neighbouring cell (the camera is fixed, so the scene sits at the same place); the frame's anomaly is
  the mean of its ``top_k`` most anomalous cells. Normal-only calibration relies on this.
* ``failure_patch``: per cell, (distance to normal) - (distance to the nearest failure embedding): does
  the unusual region look like a failure rather than just something new (a taller part, a hand)?
* ``global``: (distance of the frame to the nearest normal frame) - (to the nearest failure example).

The anomaly is standardised by the calibration set's own leave-one-out anomaly (mean and spread), so
one threshold fits cameras with very different looks. The score is
``sigmoid(scale * (w_anomaly * z + w_failure_patch * fp + w_global * g - bias))``. The heatmap is the
per-cell version of the same rule, in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass
class ScoringParams:
    scale: float = 12.0
    margin: float = 0.0
    top_k: int = 2
    neighbourhood: int = 1
    w_anomaly: float = 0.0
    w_failure_patch: float = 0.0
    w_global: float = 1.0
    bias: float = 0.0
    min_spread: float = 0.02
    # extra weight on the global failure evidence when the camera gave its own failure examples
    w_camera_failure: float = 0.0

    @classmethod
    def from_manifest(cls, raw: dict[str, Any]) -> ScoringParams:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in raw:
                values[f.name] = int(raw[f.name]) if f.type in ("int", int) else float(raw[f.name])
        return cls(**values)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -60, 60)))


def nearest_distance(query: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Cosine distance (1 - cos) from each row of ``query`` (Q, D) to its nearest row of ``support``."""
    if support.size == 0:
        return np.ones(len(query), dtype=np.float32)
    sims = query @ support.T
    return (1.0 - sims.max(axis=1)).astype(np.float32)


def _neighbour_index(grid: tuple[int, int], radius: int) -> list[np.ndarray]:
    rows, cols = grid
    out = []
    for r in range(rows):
        for c in range(cols):
            cells = [
                rr * cols + cc
                for rr in range(max(r - radius, 0), min(r + radius + 1, rows))
                for cc in range(max(c - radius, 0), min(c + radius + 1, cols))
            ]
            out.append(np.array(cells, dtype=np.int64))
    return out


class PrototypeScorer:
    """Scores L2-normalised embeddings against a camera's normal and failure support sets.

    ``normal_patches`` (N, P, D) are the calibration frames' patch embeddings; ``camera_failures`` says how
    many leading rows of ``failure`` come from the camera itself (the rest are generic prototypes).
    ``threshold`` and ``uncertain_band`` are the model's (the score is already standardised per camera).
    """

    def __init__(
        self,
        normal: np.ndarray,
        failure: np.ndarray,
        params: ScoringParams,
        normal_patches: np.ndarray | None = None,
        grid: tuple[int, int] | None = None,
        camera_failures: int = 0,
        threshold: float | None = None,
        uncertain_band: float | None = None,
    ):
        if normal.size == 0 or failure.size == 0:
            raise ValueError("prototype scoring needs at least one normal and one failure embedding")
        self.normal = normal.astype(np.float32)
        self.failure = failure.astype(np.float32)
        self.params = params
        self.camera_failures = camera_failures
        self.threshold = threshold
        self.uncertain_band = uncertain_band
        self.normal_patches = None if normal_patches is None or normal_patches.size == 0 else normal_patches
        self._bank: list[np.ndarray] | None = None
        self._grid = grid
        self.anomaly_mean, self.anomaly_spread = 0.0, 1.0
        if self.normal_patches is not None and grid is not None:
            self._build_bank(grid)

    # -- normal patch bank -------------------------------------------------------------------------
    def _build_bank(self, grid: tuple[int, int]) -> None:
        assert self.normal_patches is not None
        self._grid = grid
        neighbours = _neighbour_index(grid, self.params.neighbourhood)
        patches = self.normal_patches.astype(np.float32)  # (N, P, D)
        self._bank = [patches[:, idx, :].reshape(-1, patches.shape[2]) for idx in neighbours]
        self._frame_of = [np.repeat(np.arange(len(patches)), len(idx)) for idx in neighbours]
        # leave-one-out anomaly of each calibration frame against the others: this camera's normal spread
        if len(patches) >= 3:
            loo_top = [self._top(self._anomaly_cells(patches[i], exclude=i)) for i in range(len(patches))]
            self.anomaly_mean = float(np.mean(loo_top))
            self.anomaly_spread = max(float(np.std(loo_top)), self.params.min_spread)
        else:
            self.anomaly_mean, self.anomaly_spread = 0.0, max(self.params.min_spread, 0.05)

    def _anomaly_cells(self, patches: np.ndarray, exclude: int | None = None) -> np.ndarray:
        assert self._bank is not None
        out = np.empty(len(patches), dtype=np.float32)
        for p, bank in enumerate(self._bank):
            sims = bank @ patches[p]
            if exclude is not None:
                sims = np.where(self._frame_of[p] == exclude, -1.0, sims)
            out[p] = 1.0 - float(sims.max())
        return out

    def _top(self, cells: np.ndarray) -> float:
        k = max(1, min(self.params.top_k, len(cells)))
        return float(np.sort(cells)[-k:].mean())

    # -- scoring -----------------------------------------------------------------------------------
    def components(self, embedding: np.ndarray, patches: np.ndarray, grid: tuple[int, int]) -> dict[str, Any]:
        """The raw evidence for one frame (for tuning and debugging)."""
        if self.normal_patches is not None and self._grid != grid:
            self._build_bank(grid)
        d_fail_global = float(nearest_distance(embedding[np.newaxis], self.failure)[0])
        d_norm_global = float(nearest_distance(embedding[np.newaxis], self.normal)[0])
        d_fail_cells = nearest_distance(patches, self.failure)
        if self._bank is not None:
            anomaly_cells = self._anomaly_cells(patches)
            z = (self._top(anomaly_cells) - self.anomaly_mean) / self.anomaly_spread
        else:
            anomaly_cells = nearest_distance(patches, self.normal)
            z = 0.0
        fail_cells = anomaly_cells - d_fail_cells
        cam = 0.0
        if self.camera_failures:
            d_cam = float(nearest_distance(embedding[np.newaxis], self.failure[: self.camera_failures])[0])
            cam = d_norm_global - d_cam
        return {
            "z": float(z),
            "failure_patch": self._top(fail_cells),
            "global": d_norm_global - d_fail_global - self.params.margin,
            "camera_failure": cam,
            "cells": anomaly_cells,
            "fail_cells": fail_cells,
        }

    def raw(self, parts: dict[str, Any]) -> float:
        p = self.params
        return float(
            p.w_anomaly * parts["z"]
            + p.w_failure_patch * parts["failure_patch"]
            + p.w_global * parts["global"]
            + p.w_camera_failure * parts["camera_failure"]
            - p.bias
        )

    def score(
        self, embedding: np.ndarray, patches: np.ndarray, grid: tuple[int, int]
    ) -> tuple[float, np.ndarray]:
        parts = self.components(embedding, patches, grid)
        score = float(_sigmoid(self.params.scale * self.raw(parts)))
        cells = parts["cells"]
        if self._bank is not None:
            heat = (cells - self.anomaly_mean) / self.anomaly_spread * self.params.w_anomaly
        else:
            heat = np.zeros_like(cells)
        heat = heat + self.params.w_failure_patch * parts["fail_cells"] - self.params.bias
        heatmap = _sigmoid(self.params.scale * heat).astype(np.float32).reshape(grid)
        return score, heatmap


def scorer_from_calibration(
    bundle: Any, ok: np.ndarray | None, failure: np.ndarray, ok_patches: np.ndarray | None
) -> PrototypeScorer:
    """The scorer the detector uses for one camera (``bundle``: an ``appliance.detector.bundle.ModelBundle``).

    ``ok``/``ok_patches`` None (no calibration): the generic ok prototypes, no patch bank.
    ``failure`` (M, D), possibly empty: the camera's failure examples, put before the generic ones.
    """
    params = ScoringParams.from_manifest(bundle.scoring)
    generic_failure = bundle.prototypes["failure"]
    failure = np.zeros((0, generic_failure.shape[1]), np.float32) if failure is None else failure
    support_failure = (
        np.concatenate([failure.astype(np.float32), generic_failure]) if len(failure) else generic_failure
    )
    if ok is None or len(ok) == 0:
        generic = dict(bundle.scoring.get("uncalibrated", {}))
        return PrototypeScorer(
            bundle.prototypes["ok"],
            support_failure,
            ScoringParams.from_manifest({**bundle.scoring, "w_anomaly": 0.0, **generic}),
            threshold=bundle.threshold,
            uncertain_band=bundle.uncertain_band,
        )
    overrides = bundle.scoring.get("with_failures", {}) if len(failure) else {}
    if overrides:
        params = ScoringParams.from_manifest({**bundle.scoring, **overrides})
    return PrototypeScorer(
        ok,
        support_failure,
        params,
        normal_patches=ok_patches,
        grid=tuple(bundle.patch_grid),
        camera_failures=len(failure),
        threshold=bundle.threshold,
        uncertain_band=bundle.uncertain_band,
    )
