"""Answers end to end through the real pipeline and detector: an alert answered "false alarm" lowers the
next score of the same frame; MQTT answer commands parse; answers survive a restart of the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.actions.mqtt.commands import parse_command
from appliance.config.model import CameraConfig, DetectorConfig
from appliance.detector import load_detector
from appliance.detector.camera_learner import learner_path
from appliance.errors import CommandRejectedError
from appliance.service.commands import CommandKind
from appliance.service.pipeline import CameraPipeline
from appliance.sources import build_source
from tests.test_calibration import bed_images

pytestmark = pytest.mark.usefixtures("shipped_model")
BASE = "layerwatch/layerwatch"


def _pipeline(tmp_path: Path, replay: Path) -> CameraPipeline:
    config = CameraConfig.model_validate(
        {"name": "printer", "source": {"type": "replay", "path": str(replay), "loop": True, "rate_fps": 0}}
    )
    detector = load_detector(DetectorConfig(), cache_dir=tmp_path / "state")
    source = build_source(config.name, config.source, detector.input_size)
    source.open()
    return CameraPipeline(config, source, detector, tmp_path / "state", [])


def test_false_alarm_lowers_the_next_score_of_that_frame_and_persists(tmp_path: Path) -> None:
    replay = bed_images(tmp_path / "replay", 1, 5, (30, 30, 220))  # one frame, looped
    pipeline = _pipeline(tmp_path, replay)
    first = pipeline.step(0.0)
    assert first is not None and first.detection.features is not None
    frame_id = pipeline.last_frame_id
    assert frame_id is not None
    before = first.detection.score
    assert pipeline.answer("ok", frame_id=frame_id) == 1  # the user labels the frame normal
    assert learner_path(tmp_path / "state", "printer").is_file()
    after = pipeline.step(1.0)
    assert after is not None and after.detection.score < before
    assert pipeline.state_payload()["learner"]["ok"] == 1  # type: ignore[index]
    # a restart reads the answer back
    again = _pipeline(tmp_path, replay)
    assert again.scoring.learner.counts()["ok"] == 1
    step = again.step(0.0)
    assert step is not None and step.detection.score == pytest.approx(after.detection.score, abs=1e-6)
    # and withdrawing it restores the generic score
    assert again.withdraw(frame_id) == 1
    restored = again.step(1.0)
    assert restored is not None and restored.detection.score == pytest.approx(before, abs=1e-6)
    pipeline.source.close()
    again.source.close()


def test_alert_answer_labels_the_frames_that_voted_for_it(tmp_path: Path) -> None:
    """The generic model alerts on these frames; "false alarm" on the alert labels every frame that voted
    for it normal, and the same frames then score under the threshold."""
    replay = bed_images(tmp_path / "replay", 3, 6, (30, 30, 220))
    pipeline = _pipeline(tmp_path, replay)
    for i in range(12):
        pipeline.step(float(i))
        if pipeline.engine.last_alert is not None:
            break
    alert = pipeline.engine.last_alert
    if alert is None:
        pytest.skip("the generic model did not alert on these synthetic frames")
    labelled = pipeline.answer("ok", alert_id=alert.id)
    assert labelled >= 2 and pipeline.scoring.learner.counts()["ok"] == labelled
    assert pipeline.answer("ok", alert_id="unknown") == 0
    after = [pipeline.step(100.0 + i) for i in range(3)]
    assert all(r is not None and r.detection.verdict.value != "failure" for r in after)
    pipeline.source.close()


def test_mqtt_answer_commands_parse() -> None:
    cameras = ["printer"]
    command = parse_command(BASE, f"{BASE}/printer/false_alarm/set", b"PRESS", cameras)
    assert command.kind is CommandKind.ANSWER
    assert command.value == {"label": "ok", "alert": None, "frame": None}
    command = parse_command(BASE, f"{BASE}/printer/real_failure/set", b"1a2b3c4d5e6f", cameras)
    assert command.value == {"label": "failure", "alert": "1a2b3c4d5e6f", "frame": None}
    command = parse_command(BASE, f"{BASE}/printer/label/set", b"a1b2c3-17 failure", cameras)
    assert command.value == {"label": "failure", "frame": "a1b2c3-17", "alert": None}
    command = parse_command(BASE, f"{BASE}/printer/withdraw/set", b"a1b2c3-17", cameras)
    assert command.kind is CommandKind.WITHDRAW and command.value == "a1b2c3-17"
    for topic, payload in (("label", b"a1b2c3-17 maybe"), ("label", b""), ("withdraw", b"../etc"),
                           ("false_alarm", b"not an id!")):  # fmt: skip
        with pytest.raises(CommandRejectedError):
            parse_command(BASE, f"{BASE}/printer/{topic}/set", payload, cameras)


def test_calibrate_reset_removes_calibration_and_answers(tmp_path: Path) -> None:
    import subprocess
    import sys

    state = tmp_path / "state"
    for name in ("calibration.npz", "learner.npz"):
        (state / "cameras" / "printer").mkdir(parents=True, exist_ok=True)
        (state / "cameras" / "printer" / name).write_bytes(b"x")
    config = tmp_path / "layerwatch.toml"
    config.write_text(
        f'[service]\nstate_dir = "{state}"\n[[cameras]]\nname = "printer"\n'
        f'source = {{ type = "replay", path = "{tmp_path}" }}\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "calibrate", "--config", str(config), "--reset"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not list((state / "cameras" / "printer").iterdir())


def test_home_assistant_gets_answer_buttons_per_camera() -> None:
    from appliance.actions.mqtt.discovery import discovery_payload
    from appliance.config.integrations import MqttConfig

    payload = discovery_payload(MqttConfig(broker_url="mqtt://127.0.0.1:1883"), ["printer"])
    topics = {c.get("command_topic") for c in payload["cmps"].values()}
    assert {f"{BASE}/printer/false_alarm/set", f"{BASE}/printer/real_failure/set"} <= topics


def test_a_completed_print_gives_late_frames_as_normal_and_a_cancelled_one_its_alert(tmp_path: Path) -> None:
    replay = bed_images(tmp_path / "replay", 3, 7, (200, 180, 60))
    pipeline = _pipeline(tmp_path, replay)
    for i in range(6):
        result = pipeline.step(float(i))
        assert result is not None
    voted = sum(f.voted_failure for f in list(pipeline.answers.recent.values())[-4:])
    assert pipeline.answers.print_ended(completed=True) == 4 - voted
    assert pipeline.scoring.learner.counts()["ok"] == 4 - voted
    pipeline.answers._voting.clear()
    pipeline.answers._voting.extend(list(pipeline.answers.recent)[:2])
    pipeline.answers.on_alert("print-alert")
    assert pipeline.answers.print_ended(completed=False) == 2
    assert pipeline.scoring.learner.counts()["failure"] == 2
    assert pipeline.answers.print_ended(completed=False) == 0  # no alert in this print: nothing learned
    pipeline.source.close()


def test_a_camera_asks_about_frames_it_is_unsure_of_within_its_budget(tmp_path: Path) -> None:
    """Without a judge, a frame near the camera's threshold becomes a question in the state payload (at most
    the budget's share of analysed frames); answering it through ``label`` teaches the camera and closes it.
    A confident frame is never asked about."""
    from appliance.detector.ask_policy import AskPolicy, logit_of

    replay = bed_images(tmp_path / "replay", 1, 5, (120, 120, 120))  # one grey frame, looped
    pipeline = _pipeline(tmp_path, replay)
    assert pipeline.step(0.0) is not None and pipeline.last_frame_id is not None
    pipeline.answer("ok", frame_id=pipeline.last_frame_id)  # the camera's normal look: scored ok from now
    first = pipeline.step(0.5)
    assert first is not None and first.detection.verdict.value == "ok"
    relative = logit_of(first.detection.score) - logit_of(pipeline.scoring.threshold)
    # a band that holds this frame, half of analysed frames, a cap of 3 an hour
    pipeline.ask_policy = AskPolicy(share=0.5, per_hour=3, band_logit=abs(relative) + 1.0)
    for n in range(1, 11):
        assert pipeline.step(float(n)) is not None
    questions = pipeline.state_payload()["questions"]
    assert isinstance(questions, list) and len(questions) == 3  # the hourly cap
    frame_id = questions[0]["frame_id"]
    before = pipeline.scoring.learner.counts()["ok"]
    assert pipeline.answer("ok", frame_id=frame_id) == 1
    assert pipeline.scoring.learner.counts()["ok"] == before + 1
    assert frame_id not in [q["frame_id"] for q in pipeline.state_payload()["questions"]]  # type: ignore[union-attr]
    # a frame far from the threshold is never asked about
    confident = _pipeline(tmp_path / "other", replay)
    confident.step(0.0)
    assert confident.last_frame_id is not None
    confident.answer("ok", frame_id=confident.last_frame_id)
    confident.ask_policy = AskPolicy(share=1.0, per_hour=100, band_logit=max(0.01, abs(relative) - 0.5))
    for n in range(1, 11):
        confident.step(float(n))
    assert confident.state_payload()["questions"] == []
    pipeline.source.close()
    confident.source.close()
