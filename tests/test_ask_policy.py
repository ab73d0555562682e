"""The camera's question budget (:mod:`appliance.detector.ask_policy`): it asks only about frames near the
threshold, at most ``per_hour`` in any rolling hour, at most its share of analysed frames, and that share
shrinks as the camera's labels grow."""

from __future__ import annotations

import pytest

from appliance.detector.ask_policy import AskPolicy, logit_of


def _stream(policy: AskPolicy, frames: int, labels: int, interval_s: float = 2.0, logit: float = 0.1) -> int:
    return sum(policy.asks(logit, labels, n * interval_s) for n in range(frames))


def test_only_frames_the_learner_is_unsure_of() -> None:
    policy = AskPolicy(share=1.0, per_hour=1000)
    assert not policy.asks(2.5, 15, 0.0) and not policy.asks(-3.0, 15, 1.0)
    assert not policy.asks(float("nan"), 15, 2.0)
    assert policy.asks(-1.5, 15, 3.0) and policy.asks(0.3, 15, 4.0)


def test_per_hour_cap_holds_in_any_rolling_hour() -> None:
    policy = AskPolicy(share=1.0, per_hour=30, half_support=10**9)
    asked = [n * 2.0 for n in range(5400) if policy.asks(0.0, 0, n * 2.0)]  # three hours, one frame per 2 s
    assert len(asked) == 90
    for i, start in enumerate(asked):
        in_hour = [t for t in asked[i:] if t - start < 3600.0]
        assert len(in_hour) <= 30


def test_share_of_analysed_frames_and_it_shrinks_with_support() -> None:
    fresh = _stream(AskPolicy(share=0.2, per_hour=10**6, half_support=60), 1000, labels=15)
    assert fresh == pytest.approx(1000 * 0.2 * 60 / 75, abs=3)
    taught = _stream(AskPolicy(share=0.2, per_hour=10**6, half_support=60), 1000, labels=240)
    assert taught == pytest.approx(1000 * 0.2 * 60 / 300, abs=3)
    assert taught < fresh / 3
    assert AskPolicy(share=0.2, half_support=60).share_now(60) == pytest.approx(0.1)


def test_saved_credit_is_bounded() -> None:
    policy = AskPolicy(share=0.5, per_hour=10**6, half_support=10**9)
    assert _stream(policy, 1000, labels=0, logit=9.0) == 0  # nothing to ask about for a long while
    assert _stream(policy, 10, labels=0) <= 3 + 5  # then a burst: the saved credit plus its share


def test_off() -> None:
    assert _stream(AskPolicy(share=0.0), 500, labels=0) == 0
    assert _stream(AskPolicy(share=1.0, per_hour=0), 500, labels=0) == 0


def test_logit_of_inverts_the_score() -> None:
    assert logit_of(0.5) == pytest.approx(0.0)
    assert logit_of(0.880797) == pytest.approx(2.0, abs=1e-4)
    assert logit_of(0.0) < -20 and logit_of(1.0) > 20
