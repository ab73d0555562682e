"""Which frames the pipeline puts to a judge: uncertain ones, and burst frames the detector alone
cannot confirm; with no verdict the local decision stands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.config.model import CameraConfig, DecisionConfig, DetectorConfig
from appliance.config.sources import ReplaySourceConfig
from appliance.detector import Detection, Verdict, load_detector
from appliance.service.pipeline import CameraPipeline
from appliance.sources import Frame, build_source

pytestmark = pytest.mark.usefixtures("shipped_model")


class RecordingJudge:
    def __init__(self, answer: bool | None):
        self.answer = answer
        self.calls: list[str] = []

    def judge(self, camera: str, frame: Frame, detection: Detection, purpose: str) -> bool | None:
        self.calls.append(purpose)
        return self.answer


@pytest.fixture(scope="module")
def detector():
    return load_detector(DetectorConfig())


def pipeline(tmp_path: Path, detector, judge: RecordingJudge | None) -> CameraPipeline:
    camera = CameraConfig(
        name="cam",
        source=ReplaySourceConfig(path=tmp_path),
        decision=DecisionConfig(window=5, votes=2, verify_frames=2, verify_min_agree=2),
    )
    source = build_source("cam", camera.source)
    return CameraPipeline(camera, source, detector, tmp_path, [], judge=judge)


FRAME = Frame(np.zeros((8, 8, 3), np.uint8), 0.0, 0)


def det(verdict: Verdict) -> Detection:
    return Detection(score={"ok": 0.1, "uncertain": 0.5, "failure": 0.9}[verdict.value], verdict=verdict)


def test_uncertain_goes_to_the_judge(tmp_path: Path, detector):
    judge = RecordingJudge(True)
    p = pipeline(tmp_path, detector, judge)
    assert p.resolve(FRAME, det(Verdict.UNCERTAIN)) == (True, None)
    assert judge.calls == ["uncertain"]
    assert p.resolve(FRAME, det(Verdict.OK)) == (False, None)  # confident frames outside a burst: no call
    assert p.resolve(FRAME, det(Verdict.FAILURE)) == (True, None)
    assert judge.calls == ["uncertain"]


def test_no_verdict_leaves_the_local_decision(tmp_path: Path, detector):
    p = pipeline(tmp_path, detector, RecordingJudge(None))
    assert p.resolve(FRAME, det(Verdict.UNCERTAIN)) == (False, None)  # uncertain_counts_as_failure is off
    assert pipeline(tmp_path, detector, None).resolve(FRAME, det(Verdict.UNCERTAIN)) == (False, None)


def test_burst_frame_the_detector_cannot_confirm_is_verified(tmp_path: Path, detector):
    judge = RecordingJudge(True)
    p = pipeline(tmp_path, detector, judge)
    p.engine.observe(False, 0.1, 0.0)
    p.engine.observe(True, 0.9, 1.0)  # suspect: burst of 2, both must agree
    assert p.engine.burst_needs_every_frame()
    assert p.resolve(FRAME, det(Verdict.OK)) == (True, None)
    assert judge.calls == ["verify"]


class DescribingJudge(RecordingJudge):
    def describe(self, camera: str) -> dict[str, object] | None:
        return {"failure": True, "confidence": 0.9, "kind": "spaghetti", "description": "strands"}


def test_the_judges_words_travel_with_the_frame(tmp_path: Path, detector):
    p = pipeline(tmp_path, detector, DescribingJudge(True))
    vote, cloud = p.resolve(FRAME, det(Verdict.UNCERTAIN))
    assert vote is True and cloud is not None and cloud["description"] == "strands"


def test_always_mode_puts_every_analysed_frame_to_the_judge(tmp_path: Path, detector):
    judge = RecordingJudge(True)
    judge.mode = "always"  # type: ignore[attr-defined]
    p = pipeline(tmp_path, detector, judge)
    assert p.resolve(FRAME, det(Verdict.OK)) == (True, None)  # the judge's verdict decides
    assert p.resolve(FRAME, det(Verdict.FAILURE)) == (True, None)
    assert len(judge.calls) == 2


def test_always_mode_defaults_the_interval_to_10_s_and_keeps_a_set_one(tmp_path: Path):
    from appliance.config.loader import load_config

    path = tmp_path / "layerwatch.toml"
    path.write_text('[cloud]\nmode = "always"\n')
    environ = {"RTSP_URL": "rtsp://h/s", "INFERENCE_PROFILE_ARN": "arn:x"}
    config = load_config(path, environ)
    assert config.cloud.type == "bedrock" and config.service.analysis_interval_s == 10
    assert load_config(path, {**environ, "ANALYSIS_INTERVAL": "30"}).service.analysis_interval_s == 30
    assert (
        load_config(None, {**environ, "LAYERWATCH_CONFIG": str(tmp_path / "x.toml")}).cloud.mode
        == "uncertain"
    )


def test_always_mode_learns_only_from_verdicts_that_teach(tmp_path: Path, detector):
    """cloud.mode = "always": a verdict that repeats a confident local one is not an answer (no
    refit, no write per frame); a disagreement or an uncertain frame is."""
    judge = RecordingJudge(True)
    judge.mode = "always"  # type: ignore[attr-defined]
    p = pipeline(tmp_path, detector, judge)
    p.resolve(FRAME, det(Verdict.FAILURE))
    assert p._judge_verdict is None  # agrees with a confident failure
    p.resolve(FRAME, det(Verdict.OK))
    assert p._judge_verdict is True  # disagrees: the learner is told
    p.resolve(FRAME, det(Verdict.UNCERTAIN))
    assert p._judge_verdict is True
    judge.answer = False
    p.resolve(FRAME, det(Verdict.OK))
    assert p._judge_verdict is None
