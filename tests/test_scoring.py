"""Prototype scoring v2 on synthetic embeddings: no model, no images."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from appliance.detector.scoring import (
    PrototypeScorer,
    ScoringParams,
    nearest_distance,
    scorer_from_calibration,
)

D, GRID = 16, (2, 3)
P = GRID[0] * GRID[1]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def space() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    normal_dir, failure_dir = np.zeros(D), np.zeros(D)
    normal_dir[0], failure_dir[1] = 1.0, 1.0
    ok_patches = _unit(normal_dir + 0.1 * rng.normal(size=(10, P, D)))
    return {
        "normal_dir": normal_dir,
        "failure_dir": failure_dir,
        "ok": _unit(ok_patches.mean(axis=1)),
        "ok_patches": ok_patches,
        "failure": _unit(failure_dir + 0.1 * rng.normal(size=(4, D))),
        "rng": rng,  # type: ignore[dict-item]
    }


PARAMS = {"scale": 2.0, "w_anomaly": 0.0, "w_failure_patch": 0.05, "w_global": 1.0, "bias": 3.0, "top_k": 1}


def _frame(space: dict[str, np.ndarray], failing_cells: int) -> tuple[np.ndarray, np.ndarray]:
    rng = space["rng"]
    patches = _unit(space["normal_dir"] + 0.1 * rng.normal(size=(P, D)))  # type: ignore[attr-defined]
    patches[:failing_cells] = _unit(space["failure_dir"] + 0.1 * rng.normal(size=(failing_cells, D)))  # type: ignore[attr-defined]
    return _unit(patches.mean(axis=0)), patches


def test_from_manifest_reads_known_keys_and_types() -> None:
    params = ScoringParams.from_manifest({"scale": "5", "top_k": 3.0, "unknown": 1})
    assert params.scale == 5.0 and params.top_k == 3 and isinstance(params.top_k, int)
    assert ScoringParams.from_manifest({}) == ScoringParams()


def test_nearest_distance_is_cosine_distance() -> None:
    q = _unit(np.array([[1.0, 0.0], [0.0, 1.0]]))
    s = _unit(np.array([[1.0, 0.0]]))
    assert np.allclose(nearest_distance(q, s), [0.0, 1.0])
    assert np.allclose(nearest_distance(q, np.zeros((0, 2), np.float32)), 1.0)


def test_failure_scores_above_normal_and_heatmap_points_at_it(space: dict[str, np.ndarray]) -> None:
    scorer = PrototypeScorer(
        space["ok"], space["failure"], ScoringParams.from_manifest(PARAMS), space["ok_patches"], GRID
    )
    normal_score, _ = scorer.score(*_frame(space, 0), GRID)
    failure_score, heatmap = scorer.score(*_frame(space, 3), GRID)
    assert normal_score < 0.5 < failure_score
    assert heatmap.shape == GRID and heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    flat = heatmap.reshape(-1)
    assert flat[:3].min() > flat[3:].max()  # the failing cells light up


def test_camera_offsets_and_spread_come_from_the_calibration_frames(space: dict[str, np.ndarray]) -> None:
    scorer = PrototypeScorer(
        space["ok"], space["failure"], ScoringParams.from_manifest(PARAMS), space["ok_patches"], GRID
    )
    # normal frames are far from the failures (cosine distance ~1) and close to each other
    assert 0.8 < scorer.fail_offset < 1.2
    assert ScoringParams().min_spread <= scorer.spread < 0.1
    assert np.shape(scorer.fail_cell_offset) == (P,)
    uncalibrated = PrototypeScorer(space["ok"], space["failure"], ScoringParams())
    assert uncalibrated.fail_offset == 0.0 and uncalibrated.spread == 1.0


def test_scorer_from_calibration_with_and_without_calibration(space: dict[str, np.ndarray]) -> None:
    bundle = SimpleNamespace(
        scoring=PARAMS,
        prototypes={"ok": space["ok"][:2], "failure": space["failure"]},
        patch_grid=GRID,
        threshold=0.5,
        uncertain_band=0.1,
    )
    generic = scorer_from_calibration(bundle, None, space["failure"][:0], None)
    assert generic.params.w_anomaly == 0.0 and generic.threshold == 0.5 and generic.uncertain_band == 0.1
    score_generic, heatmap = generic.score(*_frame(space, 6), GRID)
    assert score_generic > 0.5 and heatmap.shape == GRID
    calibrated = scorer_from_calibration(bundle, space["ok"], space["failure"][:1], space["ok_patches"])
    assert calibrated.camera_failures == 1 and len(calibrated.failure) == 1 + len(space["failure"])
    normal, _ = calibrated.score(*_frame(space, 0), GRID)
    failure, _ = calibrated.score(*_frame(space, 2), GRID)
    assert normal < 0.5 < failure


def test_scorer_needs_support() -> None:
    with pytest.raises(ValueError):
        PrototypeScorer(np.zeros((0, D), np.float32), np.ones((1, D), np.float32), ScoringParams())


def _heads(space: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Heads that read the failure direction: logit = 8 * (cos to failure_dir) - 4, global and per cell."""
    w = np.stack([8.0 * space["failure_dir"], 8.0 * space["failure_dir"]]).astype(np.float32)
    return w, np.array([-4.0, -4.0], np.float32)


def test_failure_heads_give_absolute_evidence_and_drive_the_heatmap(space: dict[str, np.ndarray]) -> None:
    params = ScoringParams.from_manifest({"scale": 2.0, "w_global": 0.0, "w_head_cell": 1.0, "top_k": 1})
    scorer = PrototypeScorer(
        space["ok"], space["failure"], params, space["ok_patches"], GRID, heads=_heads(space)
    )
    normal = scorer.components(*_frame(space, 0), GRID)
    failing = scorer.components(*_frame(space, 2), GRID)
    assert normal["head_cell"] < 0 < failing["head_cell"]  # the failing cells read as failure, the rest not
    assert failing["likeness"] > normal["likeness"] and normal["camera_likeness"] == 0.0
    score, heatmap = scorer.score(*_frame(space, 2), GRID)
    assert score > 0.5 and scorer.score(*_frame(space, 0), GRID)[0] < 0.5
    flat = heatmap.reshape(-1)
    assert flat[:2].min() > flat[2:].max()  # the heatmap follows the cell head


def test_skipping_the_cell_anomaly_leaves_scores_and_heatmaps_unchanged(space: dict[str, np.ndarray]) -> None:
    """With a cell head and no weight on ``anomaly``/``failure_patch`` the score skips the per-cell anomaly;
    what it returns is the same as with every evidence computed."""
    params = ScoringParams.from_manifest({"scale": 2.0, "w_global": 0.5, "w_head_cell": 1.0, "top_k": 1})
    scorer = PrototypeScorer(
        space["ok"], space["failure"], params, space["ok_patches"], GRID, heads=_heads(space)
    )
    assert not scorer._needs_cells()
    frames = [_frame(space, n) for n in (0, 2, P)]
    fast = [scorer.score(*frame, GRID) for frame in frames]
    scorer._needs_cells = lambda: True  # type: ignore[method-assign]
    full = [scorer.score(*frame, GRID) for frame in frames]
    for (s1, h1), (s2, h2) in zip(fast, full, strict=True):
        assert s1 == s2 and np.array_equal(h1, h2)
    weighted = PrototypeScorer(
        space["ok"], space["failure"], ScoringParams.from_manifest(PARAMS), space["ok_patches"], GRID,
        heads=_heads(space),
    )  # fmt: skip
    assert weighted._needs_cells()  # failure_patch is weighted: the cells are computed


def test_heads_come_from_the_bundle_prototypes_and_old_bundles_work_without(
    space: dict[str, np.ndarray],
) -> None:
    w, b = _heads(space)
    prototypes = {"ok": space["ok"][:2], "failure": space["failure"]}
    common = {"scoring": PARAMS, "patch_grid": GRID, "threshold": 0.5, "uncertain_band": 0.1}
    with_heads = SimpleNamespace(prototypes={**prototypes, "head_w": w, "head_b": b}, **common)
    without = SimpleNamespace(prototypes=prototypes, **common)
    scorer = scorer_from_calibration(with_heads, space["ok"], space["failure"][:1], space["ok_patches"])
    assert scorer.heads is not None
    parts = scorer.components(*_frame(space, P), GRID)  # every cell failing: the frame is a failure
    assert parts["camera_likeness"] > 0.5 and parts["head"] > 0.0
    old = scorer_from_calibration(without, space["ok"], None, space["ok_patches"])
    assert old.heads is None and old.components(*_frame(space, 2), GRID)["head"] == 0.0


def test_a_frame_matching_the_cameras_own_failure_example_is_a_failure(space: dict[str, np.ndarray]) -> None:
    """Whatever the weights say: nearer to one of the user's failure examples than to any normal frame, and
    nearly the same picture (cosine >= match_similarity), scores at least match_score."""
    frame = _frame(space, P)
    params = ScoringParams.from_manifest({"w_global": 0.0, "bias": 10.0})  # the weighted sum says "ok"
    own = frame[0][np.newaxis]
    failure = np.concatenate([own, space["failure"]])
    scorer = PrototypeScorer(space["ok"], failure, params, space["ok_patches"], GRID, camera_failures=1)
    score, _ = scorer.score(*frame, GRID)
    assert score == pytest.approx(params.match_score)
    normal_score, _ = scorer.score(*_frame(space, 0), GRID)
    assert normal_score < 0.5  # normal frames are nearer the normal support: no match
    never = ScoringParams.from_manifest({"w_global": 0.0, "bias": 10.0, "match_similarity": 1.01})
    strict = PrototypeScorer(space["ok"], failure, never, space["ok_patches"], GRID, camera_failures=1)
    assert strict.score(*frame, GRID)[0] < 0.5


def _camera_with_cables(
    space: dict[str, np.ndarray], cabled: int, n: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` calibration frames of a camera; in ``cabled`` of them cell 0 shows something the failure head
    half-reads as failure (a cable: cosine ~0.6 to the failure direction, head logit ~ +1)."""
    rng = space["rng"]
    patches = _unit(space["normal_dir"] + 0.1 * rng.normal(size=(n, P, D)))  # type: ignore[attr-defined]
    cable = space["normal_dir"] + 0.8 * space["failure_dir"]
    patches[:cabled, 0] = _unit(cable + 0.02 * rng.normal(size=(cabled, D)))  # type: ignore[attr-defined]
    return _unit(patches.mean(axis=1)), patches


def test_calibration_guard_raises_the_threshold_over_the_cameras_normal_look(
    space: dict[str, np.ndarray],
) -> None:
    """A camera whose every normal frame reads as a failure to the heads: the guard lifts its threshold so its
    normal frames stop alarming, and a real failure still alarms."""
    params = ScoringParams.from_manifest({"scale": 4.0, "w_global": 0.0, "w_head_cell": 1.0, "top_k": 1})
    ok, ok_patches = _camera_with_cables(space, cabled=10)
    scorer = PrototypeScorer(ok, space["failure"], params, ok_patches, GRID, heads=_heads(space))
    assert scorer.calibration_alarms == 10 and scorer.threshold_shift > 0.5
    calibration_scores = sorted(scorer.score(e, p, GRID)[0] for e, p in zip(ok, ok_patches, strict=True))
    assert calibration_scores[-3] < 0.5 <= calibration_scores[-2] + 1e-6  # the floor frame sits on the line
    new_ok, new_patches = _camera_with_cables(space, cabled=20, n=20)  # more frames of the same look
    alarms = sum(scorer.score(e, p, GRID)[0] >= 0.5 for e, p in zip(new_ok, new_patches, strict=True))
    assert alarms < 10  # a floor from 10 frames: its estimate of the look's upper tail is rough
    assert scorer.score(*_frame(space, 2), GRID)[0] > 0.9  # spaghetti reads far above the cables
    off = ScoringParams.from_manifest({**vars(params), "guard_outliers_per": 0})
    unguarded = PrototypeScorer(ok, space["failure"], off, ok_patches, GRID, heads=_heads(space))
    assert unguarded.threshold_shift == 0.0
    assert sum(unguarded.score(e, p, GRID)[0] >= 0.5 for e, p in zip(new_ok, new_patches, strict=True)) >= 18


def test_calibration_guard_ignores_one_odd_frame_in_ten_and_never_lowers(
    space: dict[str, np.ndarray],
) -> None:
    params = ScoringParams.from_manifest({"scale": 4.0, "w_global": 0.0, "w_head_cell": 1.0, "top_k": 1})
    ok, ok_patches = _camera_with_cables(space, cabled=1)  # a hand in view in one frame of ten
    scorer = PrototypeScorer(ok, space["failure"], params, ok_patches, GRID, heads=_heads(space))
    assert scorer.calibration_alarms == 1 and scorer.threshold_shift == 0.0
    clean, clean_patches = _camera_with_cables(space, cabled=0)
    tidy = PrototypeScorer(clean, space["failure"], params, clean_patches, GRID, heads=_heads(space))
    assert tidy.calibration_alarms == 0 and tidy.threshold_shift == 0.0  # far below: the threshold stays


def test_each_scoring_table_may_carry_its_own_band(space: dict[str, np.ndarray]) -> None:
    bundle = SimpleNamespace(
        scoring={**PARAMS, "uncertain_band": 0.04, "with_failures": {"uncertain_band": 0.07}},
        prototypes={"ok": space["ok"][:2], "failure": space["failure"]},
        patch_grid=GRID,
        threshold=0.5,
        uncertain_band=0.1,
    )
    assert scorer_from_calibration(bundle, None, None, None).uncertain_band == 0.1
    assert scorer_from_calibration(bundle, space["ok"], None, space["ok_patches"]).uncertain_band == 0.04
    with_failures = scorer_from_calibration(bundle, space["ok"], space["failure"][:1], space["ok_patches"])
    assert with_failures.uncertain_band == 0.07


def test_an_uncalibrated_camera_gets_the_normal_only_table_when_it_reads_no_calibration(
    space: dict[str, np.ndarray],
) -> None:
    absolute = {"scale": 2.0, "w_global": 0.0, "w_head_cell": 1.0, "w_likeness": 0.5, "bias": 0.5, "top_k": 1}
    w, b = _heads(space)
    prototypes = {"ok": space["ok"][:2], "failure": space["failure"], "head_w": w, "head_b": b}
    common = {"prototypes": prototypes, "patch_grid": GRID, "threshold": 0.5, "uncertain_band": 0.1}
    bundle = SimpleNamespace(scoring=absolute, **common)
    generic = scorer_from_calibration(bundle, None, None, None)
    assert generic.params == ScoringParams.from_manifest(absolute)
    calibrated = scorer_from_calibration(bundle, space["ok"], None, space["ok_patches"])
    assert calibrated.threshold_shift == 0.0
    for frame in (_frame(space, 0), _frame(space, 2)):  # the same score with or without a calibration
        assert generic.score(*frame, GRID)[0] == calibrated.score(*frame, GRID)[0]
    relative = SimpleNamespace(scoring=PARAMS, **common)  # the table needs a calibration: nearest prototype
    assert scorer_from_calibration(relative, None, None, None).params.w_global == 1.0
    told = SimpleNamespace(scoring={**absolute, "uncalibrated": {"bias": 0.1}}, **common)  # the manifest says
    assert scorer_from_calibration(told, None, None, None).params.bias == 0.1
