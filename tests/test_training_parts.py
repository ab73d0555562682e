"""The training-side pieces that need no trained model: the tuner's objective and the logistic heads' fit
(torch is a training-only extra: the heads' test skips where it is not installed)."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.training.data import FOLDS, box_cells


def test_fit_logistic_separates_two_directions() -> None:
    pytest.importorskip("torch")
    from appliance.training.heads import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (60, 8))
    x[:50, 0] += 1.0
    x[50:, 1] += 1.0
    y = np.array([0.0] * 50 + [1.0] * 10, np.float32)
    w, b = fit_logistic(x.astype(np.float32), y)
    assert (((x @ w + b) > 0) == (y > 0.5)).all()  # balanced classes: the minority is not ignored


def test_covered_cells_marks_the_cells_a_box_overlaps() -> None:
    cells = box_cells((0.0, 0.5, 0.3, 1.0), (4, 5), touching=True).reshape(4, 5)
    assert cells[2:, :2].all() and cells.sum() == 4


def test_dev_folds_hold_out_disjoint_data_and_name_their_cameras_apart() -> None:
    a, b = FOLDS["a"], FOLDS["b"]
    assert not set(a.sources) & set(b.sources) and not set(a.sequences) & set(b.sequences)
    assert len(a.sequences) == len(b.sequences) == 10
    # each fold pastes failures from a source its own dev models never saw, and evaluates its own web source
    for fold in (a, b):
        assert fold.paste_source in fold.sources and fold.web_camera in fold.sources
    assert not set(a.cameras) & set(b.cameras)
