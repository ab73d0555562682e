"""``run_eval``: the evaluation contract, on tiny synthetic images made here."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.detector import Verdict
from appliance.evaluate import EvalManifestError, Tally, read_eval_manifest, run_eval

METRICS = {
    "tp", "fp", "tn", "fn", "precision", "recall", "f1", "false_alarm_rate", "uncertain_rate",
    "f1_if_uncertain_resolved", "latency_ms_mean", "auroc",
}  # fmt: skip


def _image(rng: np.random.Generator, failure: bool) -> np.ndarray:
    image = np.full((120, 160, 3), 50, np.uint8)
    image[70:, :] = (90, 90, 100)  # the bed
    cv2.rectangle(image, (60, 50), (100, 75), (40, 160, 220), -1)  # the part
    if failure:
        for _ in range(25):  # a tangle of filament
            pts = rng.integers([20, 20], [150, 110], size=(4, 2)).astype(np.int32)
            cv2.polylines(image, [pts], False, (230, 230, 230), 1)
    noise = rng.integers(0, 10, image.shape, dtype=np.uint8)
    return cv2.add(image, noise)


def _manifest(folder: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path = folder / "eval.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "camera", "role"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eval")
    (folder / "img").mkdir()
    rng = np.random.default_rng(1)
    rows = []
    for camera in ("cam_a", "cam_b"):
        for i in range(10):
            failure = i >= 6
            role = "calibrate" if i < 3 or i == 6 else "test"
            name = f"img/{camera}_{i}.png"
            cv2.imwrite(str(folder / name), _image(rng, failure))
            rows.append((name, "failure" if failure else "ok", camera, role))
    return _manifest(folder, rows)


def test_run_eval_reports_every_metric_per_camera_and_overall(manifest: Path) -> None:
    result = run_eval(manifest, None)
    assert set(result["cameras"]) == {"cam_a", "cam_b"}
    for block in [result["overall"], *result["cameras"].values()]:
        assert block.keys() >= METRICS
    for cam in result["cameras"].values():
        assert cam["tp"] + cam["fn"] == 3 and cam["tn"] + cam["fp"] == 3
        assert cam["calibration_ok"] == 3 and cam["calibration_failure"] == 1
        assert cam["latency_ms_mean"] > 0
        assert cam["learner"]["ok"] == 3 and cam["learner"]["failure"] == 1
        assert cam["learner"]["mode"] == "fitted" and "answers" not in cam
    overall = result["overall"]
    assert overall["tp"] + overall["fp"] + overall["tn"] + overall["fn"] == 12
    assert result["backend"].startswith(("onnxruntime", "litert"))
    assert result["protocol"] == "static" and result["feedback"] is None and "prints" not in result
    for cam in result["cameras"].values():
        assert cam["backend"] == result["backend"]
        assert cam["threshold"] == cam["threshold_start"]  # nothing was learned after calibration
        assert cam["auroc"] is None or 0 <= cam["auroc"] <= 1


def test_tally_counts_uncertain_by_side_and_resolved_as_correct() -> None:
    tally = Tally()
    tally.add("failure", Verdict.FAILURE, 0.9, 0.5, 1.0)  # tp
    tally.add("ok", Verdict.UNCERTAIN, 0.55, 0.5, 1.0)  # fp on device, resolved by the judge
    tally.add("failure", Verdict.UNCERTAIN, 0.45, 0.5, 1.0)  # fn on device, resolved
    tally.add("ok", Verdict.OK, 0.1, 0.5, 1.0)  # tn
    result = tally.as_dict()
    assert (result["tp"], result["fp"], result["tn"], result["fn"]) == (1, 1, 1, 1)
    assert result["uncertain_rate"] == 0.5 and result["errors_in_uncertain"] == 1.0
    assert result["f1"] == 0.5 and result["f1_if_uncertain_resolved"] == 1.0
    assert result["false_alarm_rate"] == 0.5


def test_bad_manifests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EvalManifestError):
        read_eval_manifest(_manifest(tmp_path, [("a.png", "broken", "cam", "test")]))
    with pytest.raises(EvalManifestError):
        read_eval_manifest(_manifest(tmp_path, [("a.png", "ok", "cam", "calibrate")]))
    bad = tmp_path / "cols.csv"
    bad.write_text("path,label\na.png,ok\n")
    with pytest.raises(EvalManifestError):
        read_eval_manifest(bad)


def test_spreadsheet_quirks_are_read_and_unreadable_images_skipped(manifest: Path, tmp_path: Path) -> None:
    """A BOM, upper-case headers, alias labels and a blank line parse; a missing and a corrupt image are
    counted as skipped, and every readable row is still scored."""
    lines = manifest.read_text().splitlines()[1:]
    folder = manifest.parent
    (folder / "img" / "corrupt.png").write_bytes(b"not an image")
    extra = ["img/missing.png,ok,cam_a,test", "img/corrupt.png,failed,cam_a,calibrate", ""]
    body = [line.replace(",failure,", ",fail,").replace(",ok,", ",Good,") for line in lines]
    quirky = folder / "quirky.csv"
    quirky.write_text("\ufeffPath, Label ,CAMERA,role\n" + "\n".join(body + extra) + "\n", encoding="utf-8")
    rows = read_eval_manifest(quirky)
    assert {r.label for r in rows} == {"ok", "failure"}
    result = run_eval(quirky, None)
    assert result["cameras"]["cam_a"]["skipped"] == 2 and result["overall"]["skipped"] == 2
    assert result["cameras"]["cam_a"]["calibration_failure"] == 1
    overall = result["overall"]
    assert overall["tp"] + overall["fp"] + overall["tn"] + overall["fn"] == 12


def test_feedback_labels_a_row_only_after_scoring_it_and_only_when_asked(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--feedback`` (``asked``; ``True`` as older callers pass it): every answer follows the scoring of its
    own row, and only failure/uncertain verdicts are answered; the counts add up."""
    from appliance.evaluation.scorer import DetectorScorer

    events: list[tuple[str, object]] = []
    teach = DetectorScorer.teach

    def logged_teach(self: DetectorScorer, label: str, detection: object, frame_id: str) -> float | None:
        events.append(("answer", frame_id))
        return teach(self, label, detection, frame_id)  # type: ignore[arg-type]

    monkeypatch.setattr(DetectorScorer, "teach", logged_teach)
    result = run_eval(
        manifest,
        None,
        feedback=True,
        on_scored=lambda row, d: events.append(("scored", (row.line, d.verdict))),
    )
    for n, (kind, value) in enumerate(events):
        if kind == "answer":
            previous_kind, (line, verdict) = events[n - 1]  # type: ignore[misc]
            assert previous_kind == "scored" and verdict is not Verdict.OK and value == f"row-{line}"
    answers = sum(kind == "answer" for kind, _ in events)
    asked = sum(kind == "scored" and value[1] is not Verdict.OK for kind, value in events)  # type: ignore[index]
    overall = result["overall"]
    assert answers == asked == overall["answers"] == overall["answers_ok"] + overall["answers_failure"]
    assert result["protocol"] == "feedback" and result["feedback"] == "asked"
    assert overall["answer_rate"] == round(answers / 12, 4)
    for cam in result["cameras"].values():
        assert cam["learner_after"]["ok"] + cam["learner_after"]["failure"] == 4 + cam["answers"]


def test_feedback_changes_later_scores_in_stream_order(tmp_path: Path) -> None:
    """The same failure frames scored after the camera was told about the first of them score higher than
    without feedback: the stream order matters."""
    rng = np.random.default_rng(3)
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(4):
        name = f"img/ok_{i}.png"
        cv2.imwrite(str(tmp_path / name), _image(rng, False))
        rows.append((name, "ok", "cam", "calibrate"))
    failure = _image(rng, True)
    for i in range(6):  # near-identical failure frames, the first ones answered in feedback
        name = f"img/fail_{i}.png"
        cv2.imwrite(str(tmp_path / name), cv2.add(failure, np.full_like(failure, i)))
        rows.append((name, "failure", "cam", "test"))
    path = _manifest(tmp_path, rows)
    static = run_eval(path, None)["cameras"]["cam"]
    streamed = run_eval(path, None, feedback=True)["cameras"]["cam"]
    if streamed["answers"] == 0:
        pytest.skip("the generic model scored every synthetic failure ok: nothing was asked")
    assert streamed["tp"] >= static["tp"]
    assert streamed["learner_after"]["failure"] == streamed["answers"]


def test_capacity_protocol_never_uses_a_label_before_its_frame_is_scored(
    manifest: Path, shipped_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``feedback="all"`` with the real detector and learner: frame X appears twice among the test rows. Its
    label is flipped between two runs; the first occurrence scores the same in both (its own label is not
    known yet), and the second at least as high when the label said failure (it is known by then)."""
    import appliance.evaluate as evaluate
    from appliance.config.model import DetectorConfig
    from appliance.detector import load_detector

    detector = load_detector(DetectorConfig(model=shipped_model, type="auto"))
    monkeypatch.setattr(evaluate, "load_detector", lambda config: detector)  # one backend for both runs
    img = manifest.parent / "img"
    calibrate = [
        (str(img / f"cam_a_{i}.png"), "ok" if i < 6 else "failure", "cam", "calibrate") for i in (0, 1, 2, 6)
    ]
    scores: dict[str, list[float]] = {"failure": [], "ok": []}
    for x_label, seen in scores.items():
        x = (str(img / "cam_b_8.png"), x_label, "cam", "test")
        y, z = (
            (str(img / "cam_b_3.png"), "ok", "cam", "test"),
            (str(img / "cam_b_9.png"), "failure", "cam", "test"),
        )
        (tmp_path / x_label).mkdir()
        path = _manifest(tmp_path / x_label, [*calibrate, y, x, z, x])
        result = run_eval(
            path, None, feedback="all", on_scored=lambda row, d, seen=seen: seen.append(d.score)
        )
        assert result["protocol"] == "capacity" and result["overall"]["answers"] == 4
        assert result["cameras"]["cam"]["answers_ok"] == 1 + (x_label == "ok") * 2
    assert scores["failure"][:2] == scores["ok"][:2]  # Y, then X's first occurrence: no label of X used
    assert scores["failure"][3] >= scores["ok"][3]  # X again, after its label was given
