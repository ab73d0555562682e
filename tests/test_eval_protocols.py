"""The eval protocols' order and counting with exact scores: a stub scorer stands in for the detector, so the
logic (a label is never used before its frame is scored; who is asked; answers split by label) is tested
whatever the model scores. AUROC on known scores. The CLI's ``--feedback`` forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.cli import build_parser
from appliance.detector import Detection, Verdict, verdict_for
from appliance.evaluate import asks, auroc
from appliance.evaluation.feedback import feedback_mode, protocol_name
from appliance.evaluation.manifest import EvalRow
from appliance.evaluation.prints import PrintReplay
from appliance.evaluation.stream import evaluate_camera

THRESHOLD, BAND = 0.5, 0.1


class StubScorer:
    """Scores frame ``k`` (the image is ``[k]``) as ``base[k]``, unless it was told frame ``k``'s label: then
    1.0 for a failure, 0.0 for ok. A label that arrived before its frame was scored would show in its
    score. It also checks that every label is for the frame scored last."""

    backend_name = "stub/exact"

    def __init__(self, base: dict[int, float]):
        self.base = base
        self.known: dict[int, str] = {}
        self.events: list[tuple[str, int]] = []
        self.last: int | None = None

    def calibrate(self, camera: str, ok_frames: list[np.ndarray], failure_frames: list[np.ndarray]) -> None:
        self.known.clear()

    def analyse(self, image: np.ndarray) -> Detection:
        self.last = key = int(image[0])
        score = {"failure": 1.0, "ok": 0.0}[self.known[key]] if key in self.known else self.base[key]
        self.events.append(("scored", key))
        return Detection(score, verdict_for(score, THRESHOLD, BAND))

    def teach(self, label: str, detection: Detection, frame_id: str) -> float | None:
        assert self.last is not None and self.events[-1] == ("scored", self.last)
        self.known[self.last] = label
        self.events.append(("taught", self.last))
        return 1.0

    @property
    def scoring(self) -> Any:
        return None

    @property
    def threshold(self) -> float:
        return THRESHOLD

    @property
    def band(self) -> float:
        return BAND

    def summary(self) -> dict[str, Any]:
        return {"labels": len(self.known)}


def _rows(spec: list[tuple[int, str]]) -> list[EvalRow]:
    """Test rows of camera ``cam``: (frame key, label), in time order, after one calibration row."""
    rows = [EvalRow(Path("99.png"), "ok", "cam", "calibrate", line=2)]
    rows += [EvalRow(Path(f"{k}.png"), label, "cam", "test", line=n + 3) for n, (k, label) in enumerate(spec)]
    return rows


def _load(row: EvalRow) -> np.ndarray:
    return np.array([int(row.path.stem)])


# frame 1 appears twice; its first score (0.2, ok) must not know its label (failure)
SPEC = [(1, "failure"), (2, "ok"), (3, "failure"), (1, "failure"), (4, "ok"), (5, "ok")]
BASE = {1: 0.2, 2: 0.1, 3: 0.9, 4: 0.55, 5: 0.7, 99: 0.0}


def _run(feedback: Any) -> tuple[StubScorer, Any, list[float]]:
    scorer = StubScorer(BASE)
    scores: list[float] = []
    run = evaluate_camera(
        "cam",
        _rows(SPEC),
        scorer,
        feedback_mode(feedback),
        load=_load,
        on_scored=lambda r, d: scores.append(d.score),
    )
    return scorer, run, scores


def test_capacity_protocol_labels_every_frame_right_after_it_is_scored() -> None:
    scorer, run, scores = _run("all")
    # scored, taught, scored, taught, ...: each label right after its own frame, never before
    assert scorer.events == [(kind, k) for k, _ in SPEC for kind in ("scored", "taught")]
    assert scores[0] == BASE[1]  # the first occurrence is scored before its label is known
    assert scores[3] == 1.0  # the second occurrence after it: the label was used, later
    result = run.result
    assert (result["answers"], result["answers_ok"], result["answers_failure"]) == (6, 3, 3)
    assert result["answer_rate"] == 1.0 and result["learner_after"] == {"labels": 5}
    assert result["backend"] == "stub/exact"


def test_asked_protocol_labels_only_what_the_appliance_would_ask() -> None:
    scorer, run, scores = _run("asked")
    asked_keys = [k for kind, k in scorer.events if kind == "taught"]
    # 1 (0.2 ok) is not asked either time; 3 (0.9 failure), 4 (0.55 uncertain), 5 (0.7 failure) are
    assert asked_keys == [3, 4, 5]
    assert scores[0] == scores[3] == BASE[1]
    result = run.result
    assert (result["answers"], result["answers_ok"], result["answers_failure"]) == (3, 2, 1)
    assert result["answer_rate"] == 0.5


def test_static_protocol_never_labels_and_counts_verdicts() -> None:
    scorer, run, scores = _run(None)
    assert all(kind == "scored" for kind, _ in scorer.events) and scores == [BASE[k] for k, _ in SPEC]
    result = run.result
    assert "answers" not in result and "learner_after" not in result
    # failure frames 1, 3, 1 score 0.2, 0.9, 0.2; normal frames 2, 4, 5 score 0.1, 0.55, 0.7
    assert (result["tp"], result["fn"], result["fp"], result["tn"]) == (1, 2, 2, 1)
    assert result["uncertain"] == 1
    # pairs (failure, ok) ranked right: 0.9 beats all three, 0.2 beats 0.1 only (twice): 5 of 9
    assert result["auroc"] == round(5 / 9, 4)


def test_a_stub_with_no_learner_gives_no_answers() -> None:
    """A detector that cannot learn (no features) is not counted as answered."""

    class Deaf(StubScorer):
        def teach(self, label: str, detection: Detection, frame_id: str) -> float | None:
            return None

    run = evaluate_camera("cam", _rows(SPEC), Deaf(BASE), "all", load=_load)
    assert run.result["answers"] == 0 and run.refit_ms == []


def test_asks_is_todays_rule() -> None:
    assert asks(Detection(0.9, Verdict.FAILURE), None)
    assert asks(Detection(0.5, Verdict.UNCERTAIN), None)
    assert not asks(Detection(0.1, Verdict.OK), None)


def test_auroc_on_known_scores() -> None:
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auroc([0.5, 0.5, 0.5], [False, True, True]) == 0.5  # ties count one half
    assert auroc([0.3, 0.7], [False, False]) is None and auroc([], []) is None


def test_auroc_equals_the_pair_count_with_ties() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 60) / 5  # many ties
    labels = rng.random(60) < 0.4
    pos, neg = scores[labels], scores[~labels]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert auroc(scores.tolist(), labels.tolist()) == round(pairs / (len(pos) * len(neg)), 4)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], None),
        (["--feedback"], "asked"),
        (["--feedback", "asked"], "asked"),
        (["--feedback", "all"], "all"),
    ],
)
def test_cli_feedback_forms(argv: list[str], expected: str | None) -> None:
    args = build_parser().parse_args(["eval", "--manifest", "m.csv", *argv, "--prints"])
    assert args.feedback == expected and args.prints and args.interval is None


def test_feedback_argument_accepts_the_old_bool() -> None:
    assert feedback_mode(True) == "asked" and feedback_mode(False) is None and feedback_mode("all") == "all"
    assert [protocol_name(m) for m in (None, "asked", "all")] == ["static", "feedback", "capacity"]
    with pytest.raises(ValueError):
        feedback_mode("some")


@pytest.mark.parametrize("feedback", [None, "asked", "all"])
def test_prints_combine_with_every_protocol(feedback: str | None) -> None:
    """One print without a ``sequence`` column (the camera's test rows): 5 normal rows, then failure rows
    the stub flags at once; the alert comes 2 rows after the first failure row in every protocol."""
    base = {k: (0.9 if k >= 10 else 0.1) for k in range(20)} | {99: 0.0}
    spec = [(k, "ok") for k in range(5)] + [(k, "failure") for k in range(10, 16)]
    replay = PrintReplay()
    run = evaluate_camera("cam", _rows(spec), StubScorer(base), feedback_mode(feedback), replay, load=_load)
    assert run.result["prints"]["prints_caught"] == 1 and run.result["prints"]["false_alarms"] == 0
    (only,) = replay.per_print()
    assert (only["sequence"], only["first_failure_frame"], only["frames_to_alert"]) == ("", 5, 2)
    assert run.answers == {None: 0, "asked": 6, "all": 11}[feedback]


def test_asked_protocol_follows_the_services_ask_policy() -> None:
    """``--feedback asked`` asks what the service asks: every failure or uncertain verdict, and ``ok`` frames
    the learner is unsure of (within 2 logits of the threshold) only as the camera's question budget allows:
    about its share of analysed frames, never a confident ``ok`` frame."""
    from types import SimpleNamespace

    from appliance.detector.ask_policy import AskPolicy
    from appliance.detector.learner import FrameFeatures
    from appliance.evaluation.feedback import is_answered

    labels = {"ok": 15, "failure": 0}
    scoring = SimpleNamespace(threshold=0.5, learner=SimpleNamespace(counts=lambda: labels))
    features = FrameFeatures(np.zeros(4, np.float32), 0.0)
    policy = AskPolicy(share=0.2, per_hour=1000, half_support=60)

    def answered(score: float, n: int) -> bool:
        detection = Detection(score, verdict_for(score, THRESHOLD, BAND), features=features)
        return is_answered("asked", detection, scoring, policy, n * 2.0)

    unsure = [answered(0.3, n) for n in range(500)]  # logit -0.85: ok, but near the threshold
    assert 500 * 0.16 - 3 <= sum(unsure) <= 500 * 0.16 + 3
    assert not any(answered(0.02, n) for n in range(500, 700))  # logit -3.9: confident ok
    assert all(answered(0.9, n) for n in range(700, 720))  # failure verdicts are always answered
    assert not is_answered(None, Detection(0.9, Verdict.FAILURE, features=features), scoring, policy, 0.0)
