"""Prototype scoring v2: how embeddings become a failure score and a heatmap.

A frame is compared with this camera's support sets:

* **normal**: the camera's calibration frames (every user can give them), both as global embeddings and
  as a per-cell patch bank; without a calibration, the model's generic ``ok`` prototypes;
* **failure**: the camera's failure examples if the user gave some, plus the model's generic
  ``failure`` prototypes.

Four pieces of evidence, each in cosine-distance units (1 - cos):

* ``anomaly``: per grid cell, the distance to the nearest patch of the normal frames at the same or a
  neighbouring cell (the camera is fixed, so the scene sits at the same place); the frame's value is the
  mean of its ``top_k`` most anomalous cells;
* ``failure_patch``: per cell, the anomaly plus how much nearer the cell is to a failure embedding than
  this camera's normal cells are on average: does the unusual region look like a failure rather than
  just something new (a taller part, a hand)?
* ``global``: the frame's distance to the nearest normal frame plus how much nearer it is to a failure
  embedding than this camera's normal frames are on average;
* ``camera_failure``: the same against the camera's own failure examples only (normal+failure calibration).

Four more are absolute, not relative to the camera (raw units, no spread): they say how much a frame looks
like a failure whatever this camera's normal look is, so a new part on the bed (the next print) is not a
failure just because it is new:

* ``head``: the logit of the model's linear failure head on the global embedding (fitted at export on the
  training frames: web ok/failure photos, fixed-camera frames and synthetic fixed-camera failures);
* ``head_cell``: the mean of the ``top_k`` highest logits of the per-cell failure head (cells inside a
  pasted failure vs all other cells);
* ``likeness``: cosine similarity of the frame to its nearest failure embedding (camera's and generic);
* ``camera_likeness``: cosine similarity to the nearest of the camera's own failure examples (0 without).

One rule sits beside the weighted sum: a frame that **matches one of the camera's own failure examples**
(cosine similarity at least ``match_similarity``, and nearer to it than to any of the camera's normal frames)
scores at least ``match_score``. The user said that picture is a failure; a frame that looks like it more
than like anything normal is one too. On the normal+failure dev sets of the two dev models the rule fired on
6 test frames at 0.95 (all failures, none of them a changed decision) and on 72 at 0.93 (71 failures).

**The calibration guard.** The user said the calibration frames are normal, so the detector must not call
them failures. After calibration every calibration frame is scored; of N frames, the one ranked
``1 + N // guard_outliers_per`` from the top (the second highest of 10) sets a floor: if it is over the
threshold, the camera's threshold is raised to it (``threshold_shift``, raw units before the sigmoid). The
guard only ever raises a threshold, and it tolerates one outlier per ten calibration frames (a hand in
view), so it changes nothing on a camera the evidence already reads correctly: it never fired on the dev
cameras of either dev model. It is there for the camera whose ordinary look (cables, a textured bed, a
brush) reads as failure evidence to the generic heads, where it turns a camera that alarms on most frames
into one that alarms on few. A calibration frame's own patches are in the normal patch bank, so its
``anomaly`` reads low; that only makes the guard milder, never stricter.

The "than this camera's normal frames are on average" offsets are measured on the calibration frames, so
one threshold fits cameras whose normal look is nearer to or further from the failure examples. The score
is ``sigmoid(scale * (w . evidence - bias))`` with weights from the manifest's ``scoring`` table (and its
``with_failures`` table when the camera gave failure examples); a table's ``uncertain_band``, if it has
one, is the band for cameras scored with it. The heatmap is the score spread over the
cells by their ``failure_patch`` evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

KEYS = (
    "anomaly", "failure_patch", "global", "camera_failure",  # relative to the camera's calibration
    "head", "head_cell", "likeness", "camera_likeness",  # absolute
)  # fmt: skip
# without a calibration, when the normal-only table needs one: nearest prototype, generic ok vs generic
# failure (manifest "uncalibrated" overrides)
UNCALIBRATED = {
    "w_anomaly": 0.0,
    "w_failure_patch": 0.0,
    "w_global": 1.0,
    "w_camera_failure": 0.0,
    "w_head": 0.0,
    "w_head_cell": 0.0,
    "w_likeness": 0.0,
    "w_camera_likeness": 0.0,
    "bias": 0.0,
}


@dataclass
class ScoringParams:
    scale: float = 12.0
    margin: float = 0.0
    top_k: int = 2
    neighbourhood: int = 1
    w_anomaly: float = 0.0
    w_failure_patch: float = 0.0
    w_global: float = 1.0
    w_camera_failure: float = 0.0
    w_head: float = 0.0
    w_head_cell: float = 0.0
    w_likeness: float = 0.0
    w_camera_likeness: float = 0.0
    bias: float = 0.0
    min_spread: float = 0.02
    match_similarity: float = 0.95
    match_score: float = 0.9
    guard_outliers_per: int = 10  # the guard ignores one calibration frame per this many (0: guard off)

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

    ``normal_patches`` (N, P, D) are the calibration frames' patch embeddings (with ``grid``, the patch bank
    for the anomaly evidence); ``camera_failures`` says how many leading rows of ``failure`` come from the
    camera itself (the rest are generic prototypes). ``threshold``/``uncertain_band`` are what the
    detector should use for this camera (the model's: the evidence is already relative to the camera).
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
        heads: tuple[np.ndarray, np.ndarray] | None = None,
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
        # the linear failure heads: weights (2, D) (global, cell) and biases (2,), or None
        self.heads = None if heads is None else (heads[0].astype(np.float32), heads[1].astype(np.float32))
        self._bank: list[np.ndarray] | None = None
        self._frame_of: list[np.ndarray] = []
        self._grid: tuple[int, int] | None = None
        self.fail_offset, self.camera_offset, self.spread = 0.0, 0.0, 1.0
        self.fail_cell_offset: np.ndarray | float = 0.0
        self.threshold_shift = 0.0  # raw units: what the calibration guard raised this camera's threshold by
        self.calibration_alarms = 0  # calibration frames the evidence alone would call failures
        if self.normal_patches is not None and grid is not None:
            self._build_bank(grid)

    def _guard(self, grid: tuple[int, int]) -> None:
        """The calibration guard (module docstring): the threshold floor from the calibration frames."""
        assert self.normal_patches is not None
        cells_needed = self._needs_cells()
        raws = np.sort(
            [
                self.raw(self.components(e, p, grid, cells_needed=cells_needed))
                for e, p in zip(self.normal, self.normal_patches, strict=True)
            ]
        )
        self.calibration_alarms = int((raws >= 0).sum())
        per = self.params.guard_outliers_per
        if per <= 0 or not len(raws):
            return
        rank = 1 + len(raws) // per
        if rank <= len(raws):
            self.threshold_shift = max(0.0, float(raws[-rank]))

    def _build_bank(self, grid: tuple[int, int]) -> None:
        """The per-cell normal patch bank and the camera's offsets, from the calibration frames."""
        assert self.normal_patches is not None
        self._grid = grid
        patches = self.normal_patches.astype(np.float32)  # (N, P, D)
        neighbours = _neighbour_index(grid, self.params.neighbourhood)
        self._bank = [patches[:, idx, :].reshape(-1, patches.shape[2]) for idx in neighbours]
        self._frame_of = [np.repeat(np.arange(len(patches)), len(idx)) for idx in neighbours]
        # how near this camera's normal look already is to the failure examples, overall and per cell
        self.fail_offset = float(nearest_distance(self.normal, self.failure).mean())
        flat = nearest_distance(patches.reshape(-1, patches.shape[2]), self.failure)
        self.fail_cell_offset = flat.reshape(patches.shape[:2]).mean(axis=0)
        if self.camera_failures:
            own = self.failure[: self.camera_failures]
            self.camera_offset = float(nearest_distance(self.normal, own).mean())
        # how different this camera's normal frames are from each other (leave-one-out nearest neighbour):
        # the unit the evidence is measured in, so a camera with a varied normal look needs a larger change
        if len(self.normal) >= 2:
            sims = self.normal @ self.normal.T
            np.fill_diagonal(sims, -1.0)
            self.spread = max(float(np.median(1.0 - sims.max(axis=1))), self.params.min_spread)
        self._guard(grid)

    def _anomaly_cells(self, patches: np.ndarray) -> np.ndarray:
        assert self._bank is not None
        return np.array(
            [1.0 - float((bank @ patches[p]).max()) for p, bank in enumerate(self._bank)], np.float32
        )

    def _top(self, cells: np.ndarray) -> float:
        k = max(1, min(self.params.top_k, len(cells)))
        return float(np.sort(cells)[-k:].mean())

    def _needs_cells(self) -> bool:
        """Whether a score needs the per-cell anomaly (the costly part of scoring a frame): only when the
        table weights ``anomaly`` or ``failure_patch``, or when there is no cell head to draw the heatmap."""
        p = self.params
        return self.heads is None or bool(p.w_anomaly) or bool(p.w_failure_patch)

    def components(
        self, embedding: np.ndarray, patches: np.ndarray, grid: tuple[int, int], cells_needed: bool = True
    ) -> dict[str, Any]:
        """The evidence for one frame (``KEYS``, plus the per-cell arrays behind the heatmap).
        ``cells_needed=False`` skips the per-cell anomaly: ``anomaly`` and ``failure_patch`` are then 0 and
        ``cells`` zeros (for scoring with a table that does not weight them)."""
        if self.normal_patches is not None and self._grid != grid:
            self._build_bank(grid)
        d_norm = float(nearest_distance(embedding[np.newaxis], self.normal)[0])
        d_fail = float(nearest_distance(embedding[np.newaxis], self.failure)[0])
        cells = fail_cells = np.zeros(len(patches), np.float32)
        if cells_needed:
            if self._bank is not None:
                cells = self._anomaly_cells(patches)
            else:
                cells = nearest_distance(patches, self.normal)
            fail_cells = cells - (nearest_distance(patches, self.failure) - self.fail_cell_offset)
        camera, camera_likeness, camera_match = 0.0, 0.0, False
        if self.camera_failures:
            d_cam = float(nearest_distance(embedding[np.newaxis], self.failure[: self.camera_failures])[0])
            camera = d_norm - (d_cam - self.camera_offset)
            camera_likeness = 1.0 - d_cam
            camera_match = d_cam < d_norm and camera_likeness >= self.params.match_similarity
        head, head_cells = 0.0, None
        if self.heads is not None:
            w, b = self.heads
            head = float(embedding @ w[0] + b[0])
            head_cells = (patches @ w[1] + b[1]).astype(np.float32)
        unit = self.spread
        return {
            "anomaly": self._top(cells) / unit,
            "failure_patch": self._top(fail_cells) / unit,
            "global": (d_norm - (d_fail - self.fail_offset) - self.params.margin) / unit,
            "camera_failure": camera / unit,
            "head": head,
            "head_cell": 0.0 if head_cells is None else self._top(head_cells),
            "likeness": 1.0 - d_fail,
            "camera_likeness": camera_likeness,
            "camera_match": camera_match,
            "cells": cells / unit,
            "fail_cells": fail_cells / unit if head_cells is None else head_cells,
        }

    def raw(self, parts: dict[str, Any]) -> float:
        p = self.params
        return float(sum(getattr(p, f"w_{key}") * parts[key] for key in KEYS) - p.bias)

    def score(
        self, embedding: np.ndarray, patches: np.ndarray, grid: tuple[int, int]
    ) -> tuple[float, np.ndarray]:
        parts = self.components(embedding, patches, grid, cells_needed=self._needs_cells())
        score = float(_sigmoid(self.params.scale * (self.raw(parts) - self.threshold_shift)))
        if parts["camera_match"]:
            score = max(score, self.params.match_score)
        # the heatmap: the frame's score spread over the cells by their per-cell failure evidence (the cell
        # head's logits, or without heads the failure-patch evidence: most unlike this camera's normal look
        # and most like a failure); the strongest cell gets the full score
        cells = parts["fail_cells"].astype(np.float64)
        span = float(cells.max() - cells.min())
        relative = (cells - cells.min()) / span if span > 1e-9 else np.ones_like(cells)
        return score, (score * relative).astype(np.float32).reshape(grid)


def _absolute_only(params: ScoringParams) -> bool:
    """Whether a table weights only the absolute evidence (none relative to a camera's calibration)."""
    return not any(getattr(params, f"w_{key}") for key in KEYS[:4])


def scorer_from_calibration(
    bundle: Any, ok: np.ndarray | None, failure: np.ndarray | None, ok_patches: np.ndarray | None
) -> PrototypeScorer:
    """The scorer the detector uses for one camera (``bundle``: an ``appliance.detector.bundle.ModelBundle``).

    ``ok``/``ok_patches`` None (no calibration): the generic ok prototypes, no patch bank; scored with the
    normal-only table when it weights only absolute evidence (then a calibration adds only the guard), else
    with ``UNCALIBRATED`` (nearest generic prototype) and the manifest's ``uncalibrated`` overrides.
    ``failure`` (M, D), possibly empty: the camera's failure examples, put before the generic ones.
    """
    generic_failure = bundle.prototypes["failure"]
    heads = (
        (bundle.prototypes["head_w"], bundle.prototypes["head_b"]) if "head_w" in bundle.prototypes else None
    )
    own = (
        np.zeros((0, generic_failure.shape[1]), np.float32) if failure is None else failure.astype(np.float32)
    )
    support_failure = np.concatenate([own, generic_failure]) if len(own) else generic_failure
    scoring = {k: v for k, v in bundle.scoring.items() if not isinstance(v, dict)}
    if ok is None or len(ok) == 0:
        table = ScoringParams.from_manifest(scoring)
        if heads is not None and "uncalibrated" not in bundle.scoring and _absolute_only(table):
            # the normal-only table reads no calibration: it scores an uncalibrated camera just as well
            # (dev, seed 0: overall F1 0.894 with it, 0.723 with nearest generic prototype)
            params = table
        else:
            params = ScoringParams.from_manifest(
                {**scoring, **UNCALIBRATED, **bundle.scoring.get("uncalibrated", {})}
            )
        return PrototypeScorer(
            bundle.prototypes["ok"],
            support_failure,
            params,
            threshold=bundle.threshold,
            uncertain_band=bundle.uncertain_band,
            heads=heads,
        )
    if len(own):
        scoring = {**scoring, **bundle.scoring.get("with_failures", {})}
    # each table may carry its own band (its scores spread differently); else the model's
    band = float(scoring.get("uncertain_band", bundle.uncertain_band))
    return PrototypeScorer(
        ok,
        support_failure,
        ScoringParams.from_manifest(scoring),
        normal_patches=ok_patches,
        grid=tuple(bundle.patch_grid),
        camera_failures=len(own),
        threshold=bundle.threshold,
        uncertain_band=band,
        heads=heads,
    )
