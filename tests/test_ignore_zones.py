"""Ignore zones: a failure inside a zone does not raise the score (the shipped model, a calibrated
camera), the normal look stays normal, the heatmap is empty there; stored atomically, a damaged file set
aside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from appliance.config.model import DetectorConfig
from appliance.detector import Verdict, build_calibration, load_detector
from appliance.detector.ignore_zones import IgnoreMask, Zone, load_zones, parse_zones, save_zones, zones_path
from tests.api_harness import CORNER_ZONE, scene

pytestmark = pytest.mark.usefixtures("shipped_model")


def test_failure_inside_a_zone_is_suppressed_and_outside_it_is_not(tmp_path: Path):
    detector = load_detector(DetectorConfig(), cache_dir=tmp_path)
    normal = [scene(s, False, s) for s in range(6)]
    failures = [scene(10 + s, True, s) for s in range(6)]
    scoring = detector.scoring_for(build_calibration(detector, "printer", normal, failures))
    live_failures = [scene(40 + i, True, i) for i in range(4)]
    live_normal = [scene(20 + i, False, i) for i in range(4)]
    assert all(detector.analyse(f, scoring).verdict == Verdict.FAILURE for f in live_failures)

    scoring.ignore = IgnoreMask(parse_zones([CORNER_ZONE]))
    masked = [detector.analyse(f, scoring) for f in live_failures]
    assert all(d.verdict == Verdict.OK for d in masked), [round(d.score, 3) for d in masked]
    assert all(detector.analyse(f, scoring).verdict == Verdict.OK for f in live_normal)
    assert masked[0].heatmap is not None and float(masked[0].heatmap[0, -1]) == 0.0  # top right cell

    # a zone elsewhere (bottom left) leaves the failure in the corner visible
    scoring.ignore = IgnoreMask([Zone(0.0, 0.6, 0.3, 1.0)])
    assert all(detector.analyse(f, scoring).verdict == Verdict.FAILURE for f in live_failures)


def test_zones_stored_validated_and_damaged_file_set_aside(tmp_path: Path):
    zones = parse_zones([{"x0": 0.9, "y0": 0.5, "x1": 0.1, "y1": 0.2}])  # corners in any order
    assert zones == (Zone(0.1, 0.2, 0.9, 0.5),)
    save_zones(tmp_path, "printer", zones)
    assert load_zones(tmp_path, "printer") == zones
    assert json.loads(zones_path(tmp_path, "printer").read_text())["version"] == 1
    for bad in ([{"x0": "a"}], [{"x0": 0.2, "y0": 0.2, "x1": 0.2, "y1": 0.5}], {"x0": 1}, [{}] * 17):
        with pytest.raises(ValueError):
            parse_zones(bad)
    zones_path(tmp_path, "printer").write_text("{ not json")
    problems: list[str] = []
    assert load_zones(tmp_path, "printer", report=problems.append) == ()
    assert problems and list(zones_path(tmp_path, "printer").parent.glob("ignore_zones.json.bad-*"))


def test_mask_covers_the_zone_at_any_size():
    mask = IgnoreMask([Zone(0.5, 0.0, 1.0, 0.5)])
    pixels = mask.mask(320, 240)
    assert pixels[:120, 160:].min() == 255 and pixels[120:, :].max() == 0 and pixels[:, :160].max() == 0
    heat = mask.clear_heatmap(np.ones((6, 8), np.float32))
    assert heat[:3, 4:].max() == 0.0 and heat[3:, :].min() == 1.0
