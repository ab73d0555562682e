"""The linear failure heads shipped in ``layerwatch.prototypes.npz`` (``head_w`` (2, D), ``head_b`` (2,)).

Two logistic regressions on the exported int8 model's L2-normalised embeddings, fitted after export so they
see exactly what the appliance computes:

* row 0, **global**: one embedding per frame; ok = web ok photos and fixed-camera frames (bedcam_p1, the
  hard negatives), failure = web failure photos and fixed-camera frames with a failure region pasted in;
* row 1, **cell**: one patch embedding per 4 x 5 grid cell of fixed-camera frames; failure = the cells a
  pasted failure region covers, ok = every other cell and all cells of the unchanged frames.

Classes are weighted to equal total weight, with a small L2 penalty; LBFGS, deterministic. The scorer uses
the logits as absolute evidence (``head``, ``head_cell`` in :mod:`appliance.detector.scoring`): how much a
frame looks like a failure, whatever the camera's normal look is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from appliance.training.data import Sample, crop_box, failure_boxes, load_rgb, paste_failure

logger = logging.getLogger(__name__)

Embed = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # RGB frame -> (embedding, patches)


def _failure_crops(samples: list[Sample]) -> list[np.ndarray]:
    crops = []
    for s in samples:
        if s.label != "failure":
            continue
        boxes = failure_boxes(s) or ([(0.15, 0.15, 0.85, 0.85)] if s.source == "web_22yeets22" else [])
        if boxes:
            rgb = load_rgb(s.path)
            crops += [c for c in (crop_box(rgb, b) for b in boxes[:2]) if min(c.shape[:2]) >= 24]
    return crops


def _covered_cells(box: tuple[float, float, float, float], grid: tuple[int, int]) -> np.ndarray:
    """1 for each grid cell (row-major) that the normalised box (x0, y0, x1, y1) overlaps."""
    rows, cols = grid
    x0, y0, x1, y1 = box
    cells = np.zeros((rows, cols), np.float32)
    r0, r1 = int(y0 * rows), max(int(np.ceil(y1 * rows)), 1)
    c0, c1 = int(x0 * cols), max(int(np.ceil(x1 * cols)), 1)
    cells[r0:r1, c0:c1] = 1
    return cells.ravel()


def head_training_set(
    samples: list[Sample], embed: Embed, grid: tuple[int, int], seed: int, pastes: int = 600
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(global X, global y, cell X, cell y) from the labelled samples plus ``pastes`` synthetic failures."""
    rng = np.random.default_rng(seed)
    g_x, g_y, c_x, c_y, camera = [], [], [], [], []
    for s in samples:
        if s.label not in ("ok", "failure"):
            continue
        rgb = load_rgb(s.path)
        emb, patches = embed(rgb)
        g_x.append(emb)
        g_y.append(float(s.label == "failure"))
        if s.source == "bedcam_p1" and s.label == "ok":
            camera.append(rgb)
            c_x.append(patches)
            c_y.append(np.zeros(len(patches), np.float32))
    crops = _failure_crops(samples)
    if camera and crops:
        for _ in range(pastes):
            frame = camera[int(rng.integers(len(camera)))]
            pasted, box = paste_failure(frame, crops[int(rng.integers(len(crops)))], rng)
            emb, patches = embed(pasted)
            g_x.append(emb)
            g_y.append(1.0)
            c_x.append(patches)
            c_y.append(_covered_cells(box, grid))
    return np.stack(g_x), np.array(g_y, np.float32), np.concatenate(c_x), np.concatenate(c_y)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Class-balanced L2-regularised logistic regression: (weights (D,), bias)."""
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    w = torch.zeros(xt.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    pos = float(yt.mean())
    weight = torch.where(yt > 0, 0.5 / max(pos, 1e-6), 0.5 / max(1.0 - pos, 1e-6))
    opt = torch.optim.LBFGS([w, b], max_iter=300)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xt @ w + b, yt, weight=weight) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.item())


def fit_heads(
    samples: list[Sample], embed: Embed, grid: tuple[int, int], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``head_w`` (2, D) and ``head_b`` (2,): the global and the per-cell failure heads."""
    g_x, g_y, c_x, c_y = head_training_set(samples, embed, grid, seed)
    (wg, bg), (wc, bc) = fit_logistic(g_x, g_y), fit_logistic(c_x, c_y)
    for name, (x, y, w, b) in {"global": (g_x, g_y, wg, bg), "cell": (c_x, c_y, wc, bc)}.items():
        accuracy = float(((x @ w + b > 0) == (y > 0.5)).mean())
        logger.info("failure head %s: %d examples (%.0f%% failure), training accuracy %.3f",
                    name, len(y), 100 * float(y.mean()), accuracy)  # fmt: skip
    return np.stack([wg, wc]).astype(np.float32), np.array([bg, bc], np.float32)
