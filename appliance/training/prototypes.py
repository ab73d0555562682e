"""Generic support embeddings (``layerwatch.prototypes.npz``): k-means centres of the training data's
ok and failure embeddings, the model's fallback when a camera has no calibration."""

from __future__ import annotations

import numpy as np


def kmeans_prototypes(embeddings: np.ndarray, k: int, seed: int = 0, iterations: int = 30) -> np.ndarray:
    """Spherical k-means: ``k`` L2-normalised centres of L2-normalised ``embeddings`` (N, D)."""
    x = embeddings.astype(np.float32)
    if len(x) <= k:
        return x.copy()
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), size=k, replace=False)]
    for _ in range(iterations):
        assign = (x @ centres.T).argmax(axis=1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                centres[j] = members.mean(axis=0)
            else:
                centres[j] = x[rng.integers(len(x))]
        centres /= np.linalg.norm(centres, axis=1, keepdims=True) + 1e-12
    return centres.astype(np.float32)
