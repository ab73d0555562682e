"""Fault suite, issue 14 defect 3: a full disk loses no alert, says so, leaves nothing behind, recovers.

The state folder is a real full disk: a small tmpfs (``mount -t tmpfs -o size=...``; the tests run as
root) filled to the last page before ``layerwatch run`` starts. Against a real mosquitto and a local
Telegram peer that answers 503:

* the alert reaches MQTT (held in memory, delivered by the outbox worker) exactly once;
* the fault shows on the retained MQTT state (``storage: disk_full`` and a ``problems`` line), as a
  ``storage_problem`` event on ``P/event`` and in systemd's ``STATUS=``;
* no temporary file, partial evidence JPEG or outbox file is left on the full disk;
* once space is freed the Telegram alert still held in memory moves to its on-disk outbox (queuing on disk
  resumes), the state says ``storage: ok``, and the alert is delivered once Telegram answers.

The status light's ``storage`` pattern is checked in-process (gpiozero MockFactory) at the end.
"""

from __future__ import annotations

import errno
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.actions.dispatcher import Notification
from appliance.actions.outbox import Outbox, OutboxWorker
from appliance.config.model import DetectorConfig
from appliance.errors import DeliveryError
from appliance.hardware.status_patterns import STORAGE
from appliance.service.storage_health import StorageHealth
from tests.alert_scenario import calibrate, replay_folder, service_toml
from tests.fault_process import LiveService
from tests.http_peers import serving
from tests.mqtt_fixtures import Broker, Subscriber
from tests.service_harness import NotifyListener

pytestmark = [pytest.mark.mqtt, pytest.mark.usefixtures("shipped_model")]

BASE = "layerwatch/layerwatch"
TOKEN = "555000:AAE-f4ll-d1sk-t0k3n"
DISK_SIZE = "4m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs: a real file system that runs out of space."""
    folder = tmp_path / "state"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(folder)],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=10)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte (bounded by its size); returns the filler."""
    filler = folder / "filler.bin"
    chunk = b"\0" * 65536
    with filler.open("wb") as handle:
        for _ in range(10_000):  # 640 MB at most; a 4 MB disk is full long before
            try:
                handle.write(chunk)
                handle.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    for size in (4096, 512, 1):  # the last partial page
        try:
            with filler.open("ab") as handle:
                handle.write(b"\0" * size)
        except OSError:
            pass
    with pytest.raises(OSError):
        (folder / "probe").write_bytes(b"x" * 4096)
    (folder / "probe").unlink(missing_ok=True)
    return filler


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


def _leftovers(state: Path) -> list[str]:
    """Temporary files, zero-byte or partial JPEGs: what a failed write must not leave."""
    bad = []
    for path in state.rglob("*"):
        if not path.is_file() or path.name == "filler.bin":
            continue
        partial_jpeg = path.suffix == ".jpg" and not path.read_bytes().endswith(b"\xff\xd9")
        if path.name.startswith(".") or partial_jpeg:
            bad.append(str(path.relative_to(state)))
    return bad


def test_full_disk_alert_delivered_fault_reported_and_recovery(
    tmp_path: Path, small_disk: Path, mosquitto: Broker, subscriber: Subscriber
) -> None:
    state = small_disk
    # calibration.npz and backend.json on the small disk; the ONNX int8 variant for both (with "auto" the
    # fastest is picked at start-up, and the synthetic failure scores differ a little between variants)
    calibrate(state, tmp_path, detector_config=DetectorConfig(type="onnx"))
    failing = replay_folder(tmp_path / "failing", normal=2, failures=8)
    for topic in (f"{BASE}/printer/event", f"{BASE}/event", f"{BASE}/printer/state"):
        subscriber.subscribe(topic)
    with serving((503, {"ok": False, "error_code": 503, "description": "down"}, {})) as telegram:
        extra = (
            '[detector]\ntype = "onnx"\n'
            f'[mqtt]\nbroker_url = "{mosquitto.url}"\n'
            f'[notify.telegram]\nbot_token = "{TOKEN}"\nchat_id = "7"\napi_url = "{telegram.url}"\n'
            "retry_backoff_s = 0.2\n"
        )
        config = tmp_path / "layerwatch.toml"
        config.write_text(service_toml(state, failing, extra, loop=True, interval=0.05))
        filler = fill(state)
        listener = NotifyListener(tmp_path / "notify.sock")
        service = LiveService(config, {"NOTIFY_SOCKET": str(listener.path)})
        try:
            # 1. the alert still reaches the reachable channel, once
            event = json.loads(
                subscriber.wait_for(f"{BASE}/printer/event", lambda p: json.loads(p)["type"] == "alert", 60)
            )
            alert_id = event["id"]
            delivered_at = time.monotonic()
            # 2. the fault is visible: retained state, device event, systemd status
            subscriber.wait_for(
                f"{BASE}/printer/state", lambda p: json.loads(p).get("storage") == "disk_full"
            )
            problem = next(
                s for s in subscriber.json_on(f"{BASE}/printer/state") if s.get("storage") == "disk_full"
            )
            assert any("disk_full" in line for line in problem["problems"]), problem
            subscriber.wait_for(f"{BASE}/event", lambda p: json.loads(p)["type"] == "storage_problem")
            listener.wait_for("storage: disk full", timeout=10)
            telegram.wait_posts(1, timeout=15)  # Telegram was tried from memory too (and said 503)
            # 3. nothing half-written on the full disk, nothing queued there
            assert _leftovers(state) == []
            assert not list((state / "outbox").rglob("*.json"))
            assert "held in memory" in service.log()

            # 4. space returns: queuing on disk resumes, the fault clears
            filler.unlink()
            freed_at = time.monotonic()
            _wait(lambda: list((state / "outbox" / "telegram").glob("*.json")), 10, "telegram entry on disk")
            flushed_s = time.monotonic() - freed_at
            subscriber.wait_for(f"{BASE}/event", lambda p: json.loads(p)["type"] == "storage_ok", 10)
            subscriber.wait_for(f"{BASE}/printer/state", lambda p: json.loads(p).get("storage") == "ok"
                                and json.loads(p)["problems"] == [], 15)  # fmt: skip
            cleared_s = time.monotonic() - freed_at
            telegram.default = (200, {"ok": True, "result": {}}, {})
            _wait(lambda: not list((state / "outbox" / "telegram").glob("*.json")), 20, "telegram delivered")
            time.sleep(1.0)  # room for a duplicate
            rc, _ = service.terminate()
        finally:
            service.kill()
            listener.close()
    log = service.log()
    alerts = [
        e for e in subscriber.json_on(f"{BASE}/printer/event") if e["id"] == alert_id and e["repeat"] == 0
    ]
    print(f"full disk: alert on MQTT {delivered_at - service.started_at:.2f} s after start; telegram "
          f"entry on disk {flushed_s:.2f} s, storage ok {cleared_s:.2f} s after freeing space")  # fmt: skip
    assert rc == 0, log[-3000:]
    assert len(alerts) == 1, alerts
    assert "queuing on disk resumed" in log
    assert _leftovers(state) == []


def test_the_status_light_shows_a_full_disk() -> None:
    from gpiozero import LED
    from gpiozero.pins.mock import MockFactory

    from appliance.config.model import LayerwatchConfig
    from appliance.hardware.board_sink import BoardSink
    from appliance.service.commands import CommandQueue
    from appliance.service.wiring import ServiceContext

    class Board:
        rgb = False

        def __init__(self) -> None:
            self.led = LED(17, pin_factory=MockFactory())

        def device(self, name: str) -> object:
            return self.led if name == "status_led" else None

        def close(self) -> None:
            self.led.close()

    storage = StorageHealth()
    context = ServiceContext(CommandQueue(), lambda c: {}, ["printer"], Path("/nonexistent"), storage=storage)
    sink = BoardSink(Board(), LayerwatchConfig.model_validate({}), context)
    assert sink.current_state() != STORAGE
    storage.failed("outbox mqtt", OSError(errno.ENOSPC, "No space left on device"))
    assert sink.current_state() == STORAGE
    sink.refresh()
    assert sink.shown == STORAGE
    storage.ok("outbox mqtt")
    assert sink.current_state() != STORAGE
    sink.stop()


def _note(key: str) -> Notification:
    image = b"\xff\xd8" + b"j" * 20000 + b"\xff\xd9"
    return Notification(key=key, kind="alert", camera="printer", title="t", description="d", image=image)


def test_outbox_on_a_full_disk_holds_in_memory_keeps_order_and_delivers_once(small_disk: Path) -> None:
    """In-process, on the real full tmpfs: entries held in memory, in order, each delivered exactly once
    although the first attempts fail and the entries move back to disk in between."""
    storage = StorageHealth(small_disk)
    box = Outbox(small_disk / "outbox" / "mqtt", storage)
    filler = fill(small_disk)
    assert box.put(_note("a-0")) and box.put(_note("b-0"))
    assert not box.put(_note("a-0"))  # the same alert twice is still refused
    assert box.held_in_memory == 2 and box.pending() == []
    assert storage.state() == "disk_full" and "outbox mqtt" in (storage.summary() or "")
    assert _leftovers(small_disk) == []
    delivered: list[str] = []
    attempts = {"n": 0}

    def deliver(notification: Notification) -> None:
        attempts["n"] += 1
        if attempts["n"] <= 8:  # the peer is away for ~2.4 s: the held entries go back to disk meanwhile
            raise DeliveryError("away", retry_after_s=0.3)
        delivered.append(notification.key)

    worker = OutboxWorker("mqtt", box, deliver)
    worker.start()
    try:
        time.sleep(0.5)
        filler.unlink()  # space returns while the first entry is being retried
        _wait(lambda: box.held_in_memory == 0, 10, "entries back on disk")
        assert len(box.pending()) + len(delivered) == 2
        _wait(lambda: len(delivered) == 2, 10, "both delivered")
        _wait(lambda: storage.state() == "ok", 10, "storage ok")
        time.sleep(0.5)  # room for a duplicate
    finally:
        worker.stop()
    assert delivered == ["a-0", "b-0"]
    assert box.held_in_memory == 0 and box.pending() == []
    assert storage.state() == "ok"
    assert _leftovers(small_disk) == []
