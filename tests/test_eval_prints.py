"""``layerwatch eval --prints``: each print replayed through the service's decision engine.

The replay is fed exact scores here (whatever the model), so the counting is checked to the frame: an alert
is counted from the print's first failure *row* (not from the first frame the model flags), false alarms
are alerts before that row or in a print without one, time comes from ``time_s`` or the row's position.
One end-to-end run goes through the CLI with the shipped model on a manifest made here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.config.model import DecisionConfig
from appliance.detector import Detection, verdict_for
from appliance.evaluation.manifest import EvalRow, read_eval_manifest
from appliance.evaluation.prints import PrintReplay

THRESHOLD, BAND = 0.5, 0.1
LOW, HIGH, UNSURE = 0.1, 0.9, 0.55


def _feed(
    replay: PrintReplay,
    sequence: str,
    labels: list[str],
    scores: list[float],
    times: list[float] | None = None,
    line0: int = 2,
) -> None:
    for n, (label, score) in enumerate(zip(labels, scores, strict=True)):
        row = EvalRow(
            Path(f"{sequence}-{n}.png"),
            label,
            "cam",
            "test",
            sequence,
            times[n] if times else None,
            line0 + n,
        )
        replay.observe(row, Detection(score, verdict_for(score, THRESHOLD, BAND)))


def _print(replay: PrintReplay, sequence: str) -> dict[str, object]:
    (found,) = [p for p in replay.per_print() if p["sequence"] == sequence]
    return found


def test_the_alert_is_counted_from_the_first_failure_row() -> None:
    """10 normal rows, then 10 failure rows of which the model sees only the last 7: the window needs 3
    failure votes and the burst 2 of its frames, so the alert comes on the third flagged row (15), 5 rows
    and 10 s (2 s apart) after the first failure row (10)."""
    replay = PrintReplay()
    _feed(replay, "p1", ["ok"] * 10 + ["failure"] * 10, [LOW] * 13 + [HIGH] * 7)
    p1 = _print(replay, "p1")
    assert p1["first_failure_frame"] == 10 and p1["first_failure_line"] == 12
    assert p1["caught"] and p1["frames_to_alert"] == 5 and p1["seconds_to_alert"] == 10.0
    assert p1["alerts"] == [{"frame": 15, "line": 17, "time_s": 30.0, "false_alarm": False}]
    assert p1["false_alarms"] == 0 and p1["duration_s"] == 40.0
    summary = replay.summary()
    assert (summary["prints"], summary["failed_prints"], summary["prints_caught"]) == (1, 1, 1)
    assert summary["frames_to_alert_median"] == 5 and summary["seconds_to_alert_median"] == 10.0


def test_time_s_gives_the_seconds_and_an_interval_the_default() -> None:
    replay = PrintReplay(interval_s=10.0)
    labels, scores = ["ok"] * 4 + ["failure"] * 6, [LOW] * 4 + [HIGH] * 6
    _feed(replay, "timed", labels, scores, times=[100.0 + 5 * n for n in range(10)])
    _feed(replay, "spaced", labels, scores)
    timed, spaced = _print(replay, "timed"), _print(replay, "spaced")
    assert timed["frames_to_alert"] == spaced["frames_to_alert"] == 2
    assert timed["seconds_to_alert"] == 10.0 and spaced["seconds_to_alert"] == 20.0
    assert timed["duration_s"] == 50.0 and spaced["duration_s"] == 100.0


def test_a_false_alarm_is_answered_and_its_cooldown_holds() -> None:
    """A good print flagged on rows 5-7: one false alarm; the user's answer acknowledges it, so the same
    look again at rows 20-22 (within cooldown_s) raises nothing."""
    replay = PrintReplay()
    scores = [LOW] * 30
    scores[5:8] = scores[20:23] = [HIGH] * 3
    _feed(replay, "good", ["ok"] * 30, scores)
    good = _print(replay, "good")
    assert good["false_alarms"] == 1 and not good["caught"] and good["first_failure_frame"] is None
    assert good["alerts"] == [{"frame": 7, "line": 9, "time_s": 14.0, "false_alarm": True}]
    summary = replay.summary()
    assert summary["good_prints"] == 1 and summary["catch_rate"] is None
    assert summary["false_alarms"] == summary["prints_with_false_alarm"] == 1
    assert summary["false_alarms_per_print"] == 1.0
    assert summary["printing_hours"] == round(60 / 3600, 4) and summary["false_alarms_per_hour"] == 60.0


def test_a_false_alarm_before_the_failure_and_a_catch_after_the_cooldown() -> None:
    replay = PrintReplay()
    labels = ["ok"] * 10 + ["failure"] * 10
    scores = [LOW, HIGH, HIGH, HIGH] + [LOW] * 6 + [HIGH] * 10
    times = [2.0 * n for n in range(10)] + [1000.0 + 2 * n for n in range(10)]  # the failure after 900 s
    _feed(replay, "both", labels, scores, times)
    both = _print(replay, "both")
    assert [a["false_alarm"] for a in both["alerts"]] == [True, False]
    # at least the 2 of a fresh start (the row that ends the cooldown may not count as a vote)
    assert both["false_alarms"] == 1 and both["caught"] and both["frames_to_alert"] >= 2
    # the same print with the failure inside the cooldown: the false alarm's cooldown hides it
    replay = PrintReplay()
    _feed(replay, "soon", labels, scores)
    soon = _print(replay, "soon")
    assert soon["false_alarms"] == 1 and not soon["caught"]
    assert replay.summary()["prints_caught"] == 0 and replay.summary()["catch_rate"] == 0.0


def test_a_caught_print_raises_nothing_more() -> None:
    """The printer was paused at the alert: later rows of the print are not voted on."""
    replay = PrintReplay(DecisionConfig(cooldown_s=0))
    _feed(replay, "p", ["failure"] * 30, [HIGH] * 30)
    assert len(_print(replay, "p")["alerts"]) == 1


@pytest.mark.parametrize(("uncertain_votes", "caught"), [(False, False), (True, True)])
def test_uncertain_frames_vote_as_the_decision_config_says(uncertain_votes: bool, caught: bool) -> None:
    replay = PrintReplay(DecisionConfig(uncertain_counts_as_failure=uncertain_votes))
    _feed(replay, "p", ["ok"] * 3 + ["failure"] * 8, [LOW] * 3 + [UNSURE] * 8)
    assert _print(replay, "p")["caught"] is caught


def _detection(score: float) -> Detection:
    return Detection(score, verdict_for(score, THRESHOLD, BAND))


def test_an_unreadable_frame_keeps_its_place_but_does_not_vote() -> None:
    replay = PrintReplay()
    for n in range(8):
        row = EvalRow(Path(f"{n}.png"), "failure" if n >= 2 else "ok", "cam", "test", "p", None, n + 2)
        replay.observe(row, None if n == 2 else _detection(HIGH if n >= 2 else LOW))
    p = _print(replay, "p")
    # the first failure row (position 2) was unreadable: the model's first flag is row 3, the alert row 5
    assert p["first_failure_frame"] == 2 and p["frames"] == 8
    assert p["frames_to_alert"] == 3 and p["seconds_to_alert"] == 6.0


def _image(rng: np.random.Generator, failure: bool) -> np.ndarray:
    image = np.full((120, 160, 3), 50, np.uint8)
    image[70:, :] = (90, 90, 100)
    cv2.rectangle(image, (60, 50), (100, 75), (40, 160, 220), -1)
    if failure:
        for _ in range(25):
            pts = rng.integers([20, 20], [150, 110], size=(4, 2)).astype(np.int32)
            cv2.polylines(image, [pts], False, (230, 230, 230), 1)
    return cv2.add(image, rng.integers(0, 10, image.shape, dtype=np.uint8))


@pytest.fixture(scope="module")
def print_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One camera: 4 calibration rows (3 ok, 1 failure), a good print of 8 rows with time_s 10 s apart,
    and a failed print of 10 rows (failure from its row 4) without time_s."""
    folder = tmp_path_factory.mktemp("prints")
    rng = np.random.default_rng(5)
    rows: list[list[str]] = []

    def add(name: str, failure: bool, role: str, sequence: str = "", time_s: str = "") -> None:
        cv2.imwrite(str(folder / name), _image(rng, failure))
        rows.append([name, "failure" if failure else "ok", "cam", role, sequence, time_s])

    for i in range(4):
        add(f"cal{i}.png", i == 3, "calibrate")
    for i in range(8):
        add(f"good{i}.png", False, "test", "good", str(10.0 * i))
    for i in range(10):
        add(f"failed{i}.png", i >= 4, "test", "failed")
    path = folder / "prints.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "camera", "role", "sequence", "time_s"])
        writer.writerows(rows)
    return path


def test_manifest_reads_sequence_and_time(print_manifest: Path) -> None:
    rows = read_eval_manifest(print_manifest)
    assert rows[0].sequence is None and rows[0].time_s is None
    assert (rows[5].sequence, rows[5].time_s, rows[5].line) == ("good", 10.0, 7)
    assert rows[-1].sequence == "failed" and rows[-1].time_s is None


def test_eval_prints_end_to_end_with_the_shipped_model(
    print_manifest: Path, shipped_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--prints --feedback all --interval 5`` through the CLI: the per-print figures add up whatever the
    model scores, and the per-frame figures are there too."""
    argv = ["eval", "--manifest", str(print_manifest), "--model", str(shipped_model), "--prints"]
    assert main([*argv, "--feedback", "all", "--interval", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "capacity" and result["overall"]["answers"] == 18
    prints = result["prints"]
    assert (prints["prints"], prints["failed_prints"], prints["good_prints"]) == (2, 1, 1)
    assert prints["interval_s"] == 5.0 and prints["printing_hours"] == round((80 + 50) / 3600, 4)
    assert result["cameras"]["cam"]["prints"]["prints"] == 2
    assert result["overall"]["frames"] == 18 and "auroc" in result["overall"]
    by_name = {p["sequence"]: p for p in result["print_list"]}
    good, failed = by_name["good"], by_name["failed"]
    assert good["first_failure_frame"] is None and good["duration_s"] == 80.0
    assert all(a["false_alarm"] for a in good["alerts"]) and good["false_alarms"] == len(good["alerts"])
    assert failed["first_failure_frame"] == 4 and failed["frames"] == 10
    for alert in failed["alerts"]:
        assert alert["false_alarm"] is (alert["frame"] < 4)
    if failed["caught"]:
        assert failed["frames_to_alert"] >= 0 and failed["seconds_to_alert"] == failed["frames_to_alert"] * 5
    assert prints["false_alarms"] == good["false_alarms"] + failed["false_alarms"]
