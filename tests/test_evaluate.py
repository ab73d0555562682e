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
    "f1_if_uncertain_resolved", "latency_ms_mean",
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
        assert cam["threshold_shift"] >= 0.0 and 0 <= cam["calibration_alarms"] <= 3  # the calibration guard
    overall = result["overall"]
    assert overall["tp"] + overall["fp"] + overall["tn"] + overall["fn"] == 12
    assert result["backend"].startswith(("onnxruntime", "litert"))


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
