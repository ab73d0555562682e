"""Fault suite: every state file the service reads back, damaged; ``layerwatch run`` still starts.

Each damaged file (truncated, emptied, random bytes, bad CRC, valid content of the wrong shape) must
be set aside as ``<name>.bad-<time>`` with a log line saying so, and the camera must run (uncalibrated)
to READY=1 and keep analysing: never the start-up crash of issue 14 (``BadZipFile``, ``EOFError``,
``AttributeError`` in ``_cached_choice``).
"""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from appliance.config.model import DetectorConfig
from appliance.detector import build_calibration, load_calibration, load_detector, save_calibration
from appliance.detector.calibration import calibration_path
from tests.service_harness import NotifyListener, start_service, write_config

pytestmark = pytest.mark.usefixtures("shipped_model")


@pytest.fixture(scope="module")
def valid_calibration_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    detector = load_detector(DetectorConfig())
    frame = np.full((240, 320, 3), 90, np.uint8)
    folder = tmp_path_factory.mktemp("calibration")
    return save_calibration(build_calibration(detector, "printer", [frame, frame]), folder).read_bytes()


def _bad_crc(data: bytes) -> bytes:
    damaged = bytearray(data)
    middle = len(damaged) // 2
    damaged[middle : middle + 8] = bytes(b ^ 0xFF for b in damaged[middle : middle + 8])
    return bytes(damaged)


def _wrong_shape(_data: bytes) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, camera=np.array("printer"), model_fingerprint=np.array("x"), ok=np.zeros(3),
             failure=np.zeros(3), ok_patches=np.zeros(3), created=np.array(1.0))  # fmt: skip
    return buffer.getvalue()


CALIBRATION_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda _data: b"",
    "random": lambda _data: np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "bad_crc": _bad_crc,
    "wrong_shape": _wrong_shape,
}
BACKEND_DAMAGE = {
    "truncated": b'{"key": "abc", "fi',
    "empty": b"",
    "random": bytes(range(256)),
    "list": b"[]",
    "wrong_types": b'{"key": 1, "file": null}',
}


@pytest.mark.parametrize("damage", sorted(CALIBRATION_DAMAGE))
def test_damaged_calibration_is_set_aside_in_process(
    tmp_path: Path, valid_calibration_bytes: bytes, damage: str
) -> None:
    path = calibration_path(tmp_path, "printer")
    path.parent.mkdir(parents=True)
    path.write_bytes(CALIBRATION_DAMAGE[damage](valid_calibration_bytes))
    reports: list[str] = []
    assert load_calibration(tmp_path, "printer", "any", report=reports.append) is None
    assert not path.exists()
    assert [p.name.split("-")[0] for p in path.parent.iterdir()] == ["calibration.npz.bad"]
    assert len(reports) == 1 and "set aside" in reports[0] and "uncalibrated" in reports[0]


def test_save_calibration_leaves_no_temporary_file(tmp_path: Path, valid_calibration_bytes: bytes) -> None:
    path = calibration_path(tmp_path, "printer")
    path.parent.mkdir(parents=True)
    path.write_bytes(valid_calibration_bytes)
    detector = load_detector(DetectorConfig())
    frame = np.full((240, 320, 3), 60, np.uint8)
    save_calibration(build_calibration(detector, "printer", [frame]), tmp_path)
    assert [p.name for p in path.parent.iterdir()] == ["calibration.npz"]
    assert load_calibration(tmp_path, "printer", detector.bundle.fingerprint()) is not None


@pytest.mark.parametrize("damage", sorted(CALIBRATION_DAMAGE))
def test_service_starts_with_damaged_state_files(
    tmp_path: Path, synthetic_clip: Path, valid_calibration_bytes: bytes, damage: str
) -> None:
    """Both files the service reads at start damaged at once: READY, frames analysed, both set aside."""
    config = write_config(tmp_path, synthetic_clip)
    state = tmp_path / "state"
    calibration = calibration_path(state, "printer")
    calibration.parent.mkdir(parents=True)
    calibration.write_bytes(CALIBRATION_DAMAGE[damage](valid_calibration_bytes))
    (state / "backend.json").write_bytes(BACKEND_DAMAGE.get(damage, b"[]"))
    listener = NotifyListener(tmp_path / "notify.sock")
    proc = start_service(config, {"NOTIFY_SOCKET": str(listener.path)})
    try:
        listener.wait_for("READY=1", timeout=60)
        listener.wait_for(" fps; ", timeout=20)  # frames are being analysed (state as the model reads them)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        listener.close()
    err = proc.stderr.read() if proc.stderr else ""
    assert rc == 0, err
    assert "calibration of printer unreadable" in err and "running uncalibrated" in err
    assert any(p.name.startswith("calibration.npz.bad-") for p in calibration.parent.iterdir())
    assert not calibration.exists()
    names = [p.name for p in state.iterdir()]
    assert any(n.startswith("backend.json.bad-") for n in names), names
    assert isinstance(json.loads((state / "backend.json").read_text()), dict)  # timed again and rewritten
    assert not any(n.startswith(".") and n.endswith(".tmp") for n in names), names
