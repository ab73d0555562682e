"""Prototype scoring: how embeddings become a failure score and a heatmap.

A frame is compared with two sets of support embeddings:

* **normal**: this camera's calibration frames (every user can give them); without a calibration,
  the model's generic ``ok`` prototypes;
* **failure**: this camera's failure examples if the user gave some, plus the model's generic
  ``failure`` prototypes.

The score is ``sigmoid(scale * (d_normal - d_failure - margin))`` with ``d`` the cosine distance to
the nearest support embedding of each set: near the camera's normal look -> low score, nearer a
failure than anything normal -> high score. The heatmap applies the same rule per patch, with the
normal patch bank taken from the calibration frames' patches at the same grid cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class ScoringParams:
    scale: float = 12.0
    margin: float = 0.0

    @classmethod
    def from_manifest(cls, raw: dict[str, Any]) -> ScoringParams:
        return cls(scale=float(raw.get("scale", cls.scale)), margin=float(raw.get("margin", cls.margin)))


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def nearest_distance(query: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Cosine distance (1 - cos) from each row of ``query`` (Q, D) to its nearest row of ``support``."""
    sims = query @ support.T
    return 1.0 - sims.max(axis=1)


class PrototypeScorer:
    """Scores L2-normalised embeddings against normal and failure support sets."""

    def __init__(
        self,
        normal: np.ndarray,
        failure: np.ndarray,
        params: ScoringParams,
        normal_patches: np.ndarray | None = None,
    ):
        if normal.size == 0 or failure.size == 0:
            raise ValueError("prototype scoring needs at least one normal and one failure embedding")
        self.normal = normal.astype(np.float32)
        self.failure = failure.astype(np.float32)
        self.params = params
        # (P, N, D): for each grid cell, that cell's embedding in every calibration frame
        self.normal_patches = None if normal_patches is None else np.transpose(normal_patches, (1, 0, 2))

    def score(
        self, embedding: np.ndarray, patches: np.ndarray, grid: tuple[int, int]
    ) -> tuple[float, np.ndarray]:
        d_normal = float(nearest_distance(embedding[np.newaxis], self.normal)[0])
        d_failure = float(nearest_distance(embedding[np.newaxis], self.failure)[0])
        score = float(_sigmoid(self.params.scale * (d_normal - d_failure - self.params.margin)))
        return score, self._heatmap(patches, grid)

    def _heatmap(self, patches: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        if self.normal_patches is not None:
            # per cell: distance to the same cell in the normal frames
            sims = np.einsum("pd,pnd->pn", patches, self.normal_patches)
            d_normal = 1.0 - sims.max(axis=1)
        else:
            d_normal = nearest_distance(patches, self.normal)
        d_failure = nearest_distance(patches, self.failure)
        cells = _sigmoid(self.params.scale * (d_normal - d_failure - self.params.margin)).astype(np.float32)
        return cells.reshape(grid)
