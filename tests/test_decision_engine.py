"""The decision engine with a hand-driven clock: votes, verification burst, cooldown, overrides."""

from __future__ import annotations

import pytest

from appliance.config.model import DecisionConfig
from appliance.decision import CameraState, DecisionEngine


def engine(**overrides: object) -> DecisionEngine:
    config = DecisionConfig(
        **{"window": 5, "votes": 3, "verify_frames": 4, "verify_min_agree": 2, "cooldown_s": 900, **overrides}
    )
    return DecisionEngine("printer", config)


def feed(e: DecisionEngine, verdicts: str, start: float = 0.0, step: float = 2.0):
    """Feed 'F' (failure) and '.' (ok) frames; return the alerts raised."""
    alerts = []
    t = start
    for v in verdicts:
        tr = e.observe(v == "F", 0.9 if v == "F" else 0.1, t)
        if tr is not None and tr.alert is not None:
            alerts.append((t, tr.alert))
        t += step
    return alerts


def test_starts_then_watches():
    e = engine()
    assert e.state == CameraState.STARTING
    tr = e.observe(False, 0.1, 0.0)
    assert tr is not None and tr.previous == CameraState.STARTING and tr.state == CameraState.WATCHING


def test_first_failure_makes_suspect_and_asks_for_burst():
    e = engine()
    feed(e, "..")
    tr = e.observe(True, 0.9, 10.0)
    assert tr is not None and tr.state == CameraState.SUSPECT
    assert e.in_burst
    assert e.next_interval(2.0) == e.config.verify_interval_s


def test_burst_confirms_when_two_agree_and_window_votes():
    e = engine()
    alerts = feed(e, "..F" + "F.F")
    assert len(alerts) == 1
    alert = alerts[0][1]
    assert e.state == CameraState.FAILURE
    assert alert.burst_agree == 2 and alert.votes >= 3
    assert alert.camera == "printer"


def test_burst_that_disagrees_returns_to_watching():
    e = engine()
    alerts = feed(e, "..F" + "...")
    assert alerts == []
    assert e.state == CameraState.WATCHING  # 0 agree + 1 remaining < 2: burst abandoned early
    assert not e.in_burst


def test_single_glitches_never_alert():
    e = engine()
    assert feed(e, "F....F....F....F....") == []


def test_window_vote_is_required_besides_burst():
    # window 5 votes 4: initial F + 2 agreeing burst frames = 3 votes < 4, the 4th burst frame decides
    e = engine(votes=4)
    alerts = feed(e, "..F" + "F.F")
    assert alerts == [] and e.state == CameraState.SUSPECT
    alerts = feed(e, "F", start=20)
    assert len(alerts) == 1


def test_no_burst_configured_confirms_on_votes():
    e = engine(verify_frames=0, votes=1, window=1)
    alerts = feed(e, ".F")
    assert len(alerts) == 1


def test_acknowledge_starts_cooldown_and_no_alert_inside_it():
    e = engine()
    feed(e, "..FFF")
    assert e.state == CameraState.FAILURE
    tr = e.acknowledge(now=20.0)
    assert tr is not None and tr.state == CameraState.COOLDOWN
    assert feed(e, "FFFFFFFFFF", start=30.0) == []  # still failing, but within 900 s
    assert e.state == CameraState.COOLDOWN
    feed(e, ".", start=8.0 + 900.0)  # the alert was raised at t=8
    assert e.state == CameraState.WATCHING


def test_unacknowledged_failure_repeats_after_cooldown_with_same_id():
    e = engine(cooldown_s=60)
    first = feed(e, "..FFF")
    assert len(first) == 1
    assert feed(e, "FFFF", start=20.0, step=5.0) == []  # within cooldown
    again = feed(e, "F", start=8.0 + 60.0)  # the alert was raised at t=8
    assert len(again) == 1
    assert again[0][1].id == first[0][1].id and again[0][1].repeat == 1


def test_failure_clears_to_cooldown_after_a_window_of_ok():
    e = engine()
    feed(e, "..FFF")
    feed(e, ".....", start=20.0)
    assert e.state == CameraState.COOLDOWN
    assert not e.alert_active()


def test_pause_ignores_frames_and_resume_restores():
    e = engine()
    feed(e, "..")
    e.pause()
    assert e.state == CameraState.PAUSED
    assert feed(e, "FFFFFFFF") == []
    tr = e.resume(now=100.0)
    assert tr is not None and tr.state == CameraState.WATCHING


def test_camera_offline_aborts_burst_and_comes_back():
    e = engine()
    feed(e, "..F")
    assert e.state == CameraState.SUSPECT
    e.camera_lost()
    assert e.state == CameraState.CAMERA_OFFLINE and not e.in_burst
    tr = e.camera_back(now=50.0)
    assert tr is not None and tr.state == CameraState.WATCHING


def test_camera_back_during_unacknowledged_alert_is_failure():
    e = engine()
    feed(e, "..FFF")
    e.camera_lost()
    e.camera_back(now=30.0)
    assert e.state == CameraState.FAILURE


@pytest.mark.parametrize("bad", [{"votes": 6, "window": 5}, {"verify_min_agree": 5, "verify_frames": 4}])
def test_inconsistent_config_is_rejected(bad):
    with pytest.raises(ValueError):
        DecisionConfig(**bad)


def test_burst_needs_every_frame_only_when_the_detector_alone_cannot_confirm():
    e = engine()  # 4 burst frames, 2 must agree
    feed(e, "..F")
    assert not e.burst_needs_every_frame()  # 0 agree, 4 left: one ok frame still leaves 3 chances
    feed(e, "..", start=10)
    assert e.burst_needs_every_frame()  # 0 agree, 2 left: an ok now ends the burst
    assert not engine().burst_needs_every_frame()
