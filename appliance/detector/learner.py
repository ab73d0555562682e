"""The per-camera learner: a logistic regression on the camera's labelled frames, the generic model as prior.

Every frame becomes a feature vector ``phi`` (:func:`frame_features`): the frame's L2-normalised global
embedding (ImageNet EfficientNet-Lite0 features, max pooled, so a small blob still counts; ``|phi| = 1``).
The generic model's own evidence for
the frame is one number, the **prior logit** ``s0``: the global failure head's logit
(:mod:`appliance.training.heads`).

The camera's score is ``sigmoid(z)`` with

    z = alpha * s0 + delta . phi + beta + knn_weight * (max_f phi . f - max_o phi . o) - shift

fitted on the camera's **support set**: its calibration frames (normal and failure examples) and every
answer it was given since (the user on an alert or any recent frame, the cloud judge's verdict, a print that
completed or was cancelled; :mod:`appliance.detector.answers`). The loss is the logistic loss with the
classes weighted ``ok_weight`` : 1 in total (a camera has far more normal frames than failures; a false alarm
costs ``ok_weight`` missed failure frames), and the whole data term weighing ``N / reference_examples`` once
the support is larger than the calibration (10 normal + 5 failure frames; up to it the two classes weigh
``ok_weight`` and 1): every answer since adds its share, so the camera's own labels outweigh the prior as
they accumulate. Plus

* ``l2 / 2 * |delta|^2``: how far the camera's labels may move it from the generic model. With a few labels
  the score stays near the prior; with hundreds the camera's own boundary wins. ``l2`` is in units of the
  data term at the calibration's size.
* ``prior_pull / 2 * (alpha - 1)^2``: the generic logit keeps its weight unless the camera's labels say it
  is miscalibrated there (a textured bed that the generic head reads as failure).

``beta`` is free. ``delta`` lies in the span of the support's features (the representer theorem), so the fit
is a Newton iteration in ``N + 2`` unknowns on the support's Gram matrix: a few milliseconds for the few
hundred examples the support holds (``refit_ms`` is measured on every fit).

**The nearest-neighbour term** adds what a linear boundary smooths away: a frame much like one the camera
was told is a failure (an answered alert a minute ago, the same print) moves towards failure, one much like
a labelled normal frame towards normal. ``f`` and ``o`` run over the support's failure and normal features;
``phi . phi'`` is their cosine, so ``knn_weight = 10`` moves a frame 1 logit when it is 0.1 cosine nearer a
failure than any normal frame. It is not part of the fit (each
support frame is its own nearest neighbour) and counts only when the support has both labels.

**Only normal frames** (no failure label yet): there is nothing to separate, so ``alpha = 1``,
``delta = 0``, and ``beta`` is the shift that keeps the threshold above the camera's normal frames (the
calibration guard): the ``1 + N // 10``-th highest prior logit of them, plus ``guard_margin``, sits at 0. It
only ever lowers the score (beta <= the model's own bias), so a camera whose normal look the model already
reads as normal keeps the model's figures.

**The operating point** (``shift``, :func:`operating_shift`) is per camera too: once the camera has labels
of both kinds, each of its labelled normal frames is scored by a fit that did not see it, and the threshold
is set ``operating_margin`` above the highest of those (the 98th percentile once there are more than 50),
never under the fit's own boundary. Subtracted from ``z``, it keeps the score's 0.5 boundary where the
camera's normal frames allow: at most ``false_alarm_target`` of them over it. A class-balanced fit's own
boundary let 10-25 % of a hidden camera's normal frames through.

**The uncertain band** is per camera, in logit units: ``|z| < band_logit`` is uncertain. It is set from the
camera's own labelled frames: the median absolute logit of its misfitted or near-boundary labelled
examples after the fit, clamped to ``[band_min, band_max]``; a camera whose labels the learner separates
with a wide margin gets a narrow band (fewer cloud calls), one it barely separates a wide one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    """The logistic function, clipped so no logit overflows."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(z, dtype=np.float64), -40.0, 40.0)))


@dataclass(frozen=True)
class FrameFeatures:
    """What the learner reads of one frame: ``phi`` (D,) and the generic prior logit ``s0``."""

    phi: np.ndarray
    s0: float


def frame_features(embedding: np.ndarray, patches: np.ndarray, cell_logits: np.ndarray | None) -> np.ndarray:
    """``phi`` (D,) float32: the frame's L2-normalised global embedding (max pooled in the third design).

    ``patches`` and ``cell_logits`` are not part of it: given every label of a hidden in-chamber camera,
    concatenating the most failure-like cell's patch embedding lowered what a camera could learn (AUROC,
    models/README.md). They still make the heatmap."""
    del patches, cell_logits
    return np.asarray(embedding, np.float32).reshape(-1)


@dataclass
class LearnerParams:
    """The learner's knobs (module docstring). Defaults measured on the dev cameras (models/README.md)."""

    l2: float = 0.01
    ok_weight: float = 3.0  # a false alarm costs this many missed failures (class weights ok : failure)
    reference_examples: int = 15  # the support size l2 and prior_pull are set for (calibration: 10 ok + 5)
    prior_pull: float = 1.0
    guard_margin: float = 1.0
    guard_outliers_per: int = 10
    band_logit: float = 0.25  # used until the camera has labels of both classes
    band_min: float = 0.25
    band_max: float = 0.75
    knn_weight: float = 10.0  # logits per unit of (nearest failure - nearest normal) similarity; 0 = off
    newton_steps: int = 25
    # the camera's operating point (module docstring): out-of-fold logits of its labelled normal frames
    false_alarm_target: float = 0.02  # share of the camera's normal frames allowed over the threshold
    operating_margin: float = 0.5  # logits between that normal frame and the threshold
    operating_folds: int = 3


@dataclass
class LearnerFit:
    """What a fit produced: ``z = alpha * s0 + delta . phi + beta`` and the band, with how it was made."""

    alpha: float = 1.0
    beta: float = 0.0
    delta: np.ndarray | None = None  # (D,) or None (prior only)
    band_logit: float = 0.75
    examples: int = 0
    failures: int = 0
    refit_ms: float = 0.0
    mode: str = "prior"  # prior | guard | fitted
    knn_weight: float = 0.0
    support_ok: np.ndarray | None = None  # (N_ok, D) float32, for the nearest-neighbour term
    support_failure: np.ndarray | None = None  # (N_failure, D) float32
    #: the camera's operating point in logits (>= 0), subtracted from every logit so that the score's 0.5
    #: boundary is where the camera's own normal frames put it (:func:`operating_shift`)
    shift: float = 0.0

    def logit(self, phi: np.ndarray, s0: np.ndarray | float) -> np.ndarray:
        """``z`` for one frame (``phi`` (D,), ``s0`` float) or a batch (``phi`` (N, D), ``s0`` (N,))."""
        z = self.alpha * np.asarray(s0, np.float64) + self.beta - self.shift
        if self.delta is not None:
            z = z + np.asarray(phi, np.float64) @ self.delta
        if self.knn_weight and self.support_ok is not None and self.support_failure is not None:
            x = np.asarray(phi, np.float32)
            nearer = (x @ self.support_failure.T).max(axis=-1) - (x @ self.support_ok.T).max(axis=-1)
            z = z + self.knn_weight * nearer.astype(np.float64)
        return np.asarray(z, np.float64)


def _balanced_weights(y: np.ndarray, ok_weight: float, reference_examples: int) -> np.ndarray:
    """Normal frames weigh ``ok_weight`` : 1 against failures in total, however many each class has, and the
    whole grows with a support larger than ``reference_examples``: ``(ok_weight + 1) * N / reference``, so
    that more labels outweigh the fixed prior terms (a fixed total would hold the prior's pull the same at
    15 labels and at 240). Up to ``reference_examples`` the totals are ``ok_weight`` and 1."""
    weights = np.zeros(len(y), np.float64)
    scale = max(1.0, len(y) / max(1, reference_examples))  # a smaller support is not weighed down
    for label, total in ((0.0, ok_weight), (1.0, 1.0)):
        mask = y == label
        if mask.any():
            weights[mask] = total * scale / mask.sum()
    return weights


def _guard_beta(s0: np.ndarray, params: LearnerParams, prior_bias: float) -> float:
    """The shift that puts the ``1 + N // per``-th highest normal frame ``guard_margin`` under the threshold;
    never above the model's own bias (``prior_bias`` = 0 for the generic logit)."""
    if not len(s0) or params.guard_outliers_per <= 0:
        return prior_bias
    rank = 1 + len(s0) // params.guard_outliers_per
    if rank > len(s0):
        return prior_bias
    floor = float(np.sort(s0)[-rank])
    return min(prior_bias, -(floor + params.guard_margin))


def fit(phi: np.ndarray, s0: np.ndarray, y: np.ndarray, params: LearnerParams) -> LearnerFit:
    """Fit the camera's learner on its support (``phi`` (N, D), ``s0`` (N,), ``y`` (N,) 1.0 = failure) and
    set its operating point (:func:`operating_shift`); ``refit_ms`` covers both."""
    start = time.perf_counter()
    model = _fit_once(phi, s0, y, params)
    if model.mode == "fitted":
        model.shift = operating_shift(phi, s0, y, params)
        assert model.delta is not None
        z = model.alpha * np.asarray(s0, np.float64) + np.asarray(phi, np.float64) @ model.delta + model.beta
        model.band_logit = _band(z - model.shift, np.asarray(y, np.float64), params)
    model.refit_ms = (time.perf_counter() - start) * 1000
    return model


def operating_shift(phi: np.ndarray, s0: np.ndarray, y: np.ndarray, params: LearnerParams) -> float:
    """The camera's threshold in logits, from its own labelled normal frames, never below the fit's own
    boundary (0).

    A fit's logits on the frames it was fitted on are optimistic: its normal frames sit far under 0, so the
    0.5 boundary of a class-balanced fit let 10-25 % of a hidden camera's new normal frames through. Each
    normal frame is instead scored by a fit that did not see it (``operating_folds`` folds, stratified,
    fixed seed); the threshold sits ``operating_margin`` above the ``1 + false_alarm_target * N``-th highest
    of those out-of-fold logits. With few normal frames that is their highest; as answers accumulate it
    settles at the camera's 98th percentile."""
    y = np.asarray(y, np.float64)
    ok, failure = np.flatnonzero(y < 0.5), np.flatnonzero(y > 0.5)
    folds = min(params.operating_folds, len(ok), len(failure))
    if folds < 2:
        return 0.0
    rng = np.random.default_rng(0)
    fold_of = np.empty(len(y), np.int64)
    fold_of[ok] = rng.permutation(len(ok)) % folds
    fold_of[failure] = rng.permutation(len(failure)) % folds
    held_out = np.empty(len(ok))
    for k in range(folds):
        train, test = fold_of != k, ok[fold_of[ok] == k]
        fold_fit = _fit_once(phi[train], s0[train], y[train], params)
        held_out[fold_of[ok] == k] = fold_fit.logit(phi[test], s0[test])
    rank = 1 + int(params.false_alarm_target * len(ok))
    return max(0.0, float(np.sort(held_out)[-rank]) + params.operating_margin)


def _fit_once(phi: np.ndarray, s0: np.ndarray, y: np.ndarray, params: LearnerParams) -> LearnerFit:
    """One fit of ``z = alpha * s0 + delta . phi + beta`` (no operating point)."""
    start = time.perf_counter()
    y = np.asarray(y, np.float64)
    s0 = np.asarray(s0, np.float64)
    failures = int((y > 0.5).sum())
    if failures == 0 or failures == len(y):
        beta = _guard_beta(s0[y < 0.5], params, 0.0) if failures == 0 else 0.0
        return LearnerFit(
            beta=beta,
            band_logit=params.band_logit,
            examples=len(y),
            failures=failures,
            refit_ms=(time.perf_counter() - start) * 1000,
            mode="guard" if len(y) else "prior",
        )
    x = np.asarray(phi, np.float64)
    n = len(y)
    gram = x @ x.T
    c = _balanced_weights(y, params.ok_weight, params.reference_examples)
    lam, mu = params.l2, params.prior_pull
    a = np.zeros(n)
    alpha, beta = 1.0, 0.0

    def objective(a_: np.ndarray, alpha_: float, beta_: float) -> float:
        z = alpha_ * s0 + gram @ a_ + beta_
        loss = np.logaddexp(0.0, z) - y * z
        return float(c @ loss + 0.5 * lam * a_ @ gram @ a_ + 0.5 * mu * (alpha_ - 1.0) ** 2)

    current = objective(a, alpha, beta)
    for _ in range(params.newton_steps):
        z = alpha * s0 + gram @ a + beta
        p = sigmoid(z)
        r = c * (p - y)
        s = c * p * (1.0 - p)
        # reduced Newton system in (a, alpha, beta): the a-rows divided by the Gram matrix (module docstring)
        h = np.zeros((n + 2, n + 2))
        h[:n, :n] = s[:, None] * gram + lam * np.eye(n)
        h[:n, n] = s * s0
        h[:n, n + 1] = s
        h[n, :n] = (s * s0) @ gram
        h[n, n] = (s * s0) @ s0 + mu
        h[n, n + 1] = (s * s0).sum()
        h[n + 1, :n] = s @ gram
        h[n + 1, n] = (s * s0).sum()
        h[n + 1, n + 1] = s.sum() + 1e-9
        g = np.concatenate([r + lam * a, [r @ s0 + mu * (alpha - 1.0), r.sum()]])
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(h, g, rcond=None)[0]
        t = 1.0
        while t > 1e-3:
            candidate = (a - t * step[:n], alpha - t * step[n], beta - t * step[n + 1])
            value = objective(*candidate)
            if value <= current + 1e-12:
                break
            t *= 0.5
        if t <= 1e-3:
            break
        a, alpha, beta = candidate
        improvement, current = current - value, value
        if improvement < 1e-7:
            break
    delta = (x.T @ a).astype(np.float64)
    z = alpha * s0 + x @ delta + beta
    return LearnerFit(
        alpha=float(alpha),
        beta=float(beta),
        delta=delta,
        band_logit=_band(z, y, params),
        examples=n,
        failures=failures,
        refit_ms=(time.perf_counter() - start) * 1000,
        mode="fitted",
        knn_weight=params.knn_weight,
        support_ok=np.asarray(phi, np.float32)[y < 0.5],
        support_failure=np.asarray(phi, np.float32)[y > 0.5],
    )


def _band(z: np.ndarray, y: np.ndarray, params: LearnerParams) -> float:
    """The band from the camera's labelled logits: the median |z| of the examples on the wrong side or
    within ``band_max`` of the boundary (the learner's least sure labelled frames), clamped."""
    signed = np.where(y > 0.5, z, -z)  # > 0: on the right side, by that margin
    unsure = np.abs(z[signed < params.band_max])
    if not len(unsure):
        return params.band_min
    return float(np.clip(np.median(unsure), params.band_min, params.band_max))
