"""The console's alert history: bounded (old alerts leave with their images), kept across a restart,
reminders counted on their alert, a damaged file set aside."""

from __future__ import annotations

from pathlib import Path

from appliance.api.alerts_store import AlertsStore


def _alert(store: AlertsStore, alert_id: str, camera: str = "printer") -> None:
    image = store.state_dir / "cameras" / camera / "alerts" / f"{alert_id}-0.jpg"
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"\xff\xd8jpeg")
    store.record(camera, {"id": alert_id, "score": 0.9, "votes": 3, "window": 5})


def test_bounded_persisted_and_reminders(tmp_path: Path):
    store = AlertsStore(tmp_path, keep=3)
    for n in range(5):
        _alert(store, f"a{n}")
    store.record("printer", {"id": "a4", "score": 0.95})  # a reminder
    assert [a["id"] for a in store.list()] == ["a4", "a3", "a2"]
    assert store.get("a4")["repeats"] == 1
    assert not (tmp_path / "cameras/printer/alerts/a0-0.jpg").exists()  # left with its alert
    assert store.image_path("a2") is not None and store.image_path("a0") is None
    store.update("printer", None, acknowledged="now")
    again = AlertsStore(tmp_path, keep=3)
    assert [a["id"] for a in again.list()] == ["a4", "a3", "a2"] and again.get("a4")["acknowledged"] == "now"


def test_damaged_history_is_set_aside(tmp_path: Path):
    path = tmp_path / "api" / "alerts.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"alerts": 5}')
    store = AlertsStore(tmp_path, keep=10)
    assert store.list() == []
    assert list(path.parent.glob("alerts.json.bad-*"))
    _alert(store, "b1")
    assert AlertsStore(tmp_path, keep=10).get("b1") is not None
