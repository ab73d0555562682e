"""A running ``layerwatch run`` with its HTTP API on 127.0.0.1, for the API and console tests.

The scene: a printer bed with a yellow part in the middle; a failure is a red blob in the top right
corner (where a bed clip would sit). The camera is calibrated with normal frames and failure examples of
that scene, and the replay loops ``normal`` normal frames then ``failures`` failure frames, so the real
pipeline raises an alert in the first loop (and, with the default 600 s cooldown, no second one while a
test acknowledges it), every loop's failure frames are failure decisions, and an ignore zone over the
corner suppresses them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import requests

from appliance.config.model import DetectorConfig
from appliance.detector import build_calibration, load_detector, save_calibration

TOKEN = "test-token-0123456789"
CORNER_ZONE = {"x0": 0.56, "y0": 0.0, "x1": 1.0, "y1": 0.5}  # covers the failure blob


def scene(seed: int, failure: bool, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((240, 320, 3), 50, np.uint8)
    cv2.rectangle(image, (100 + shift, 90), (180 + shift, 170), (200, 180, 60), -1)
    if failure:
        cv2.rectangle(image, (200 - shift, 10), (310 - shift, 110), (30, 30, 220), -1)
    return cv2.add(image, rng.integers(0, 10, image.shape, dtype=np.uint8))


def calibrate_scene(state_dir: Path) -> None:
    detector = load_detector(DetectorConfig(), cache_dir=state_dir)
    normal = [scene(s, False, s) for s in range(6)]
    failures = [scene(10 + s, True, s) for s in range(6)]
    save_calibration(build_calibration(detector, "printer", normal, failures), state_dir)


def replay_scene(folder: Path, normal: int = 6, failures: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(normal):
        cv2.imwrite(str(folder / f"a{i:02d}.jpg"), scene(20 + i, False, i % 6))
    for i in range(failures):
        cv2.imwrite(str(folder / f"b{i:02d}.jpg"), scene(40 + i, True, i % 6))
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningService:
    url: str
    proc: subprocess.Popen[str]
    state_dir: Path
    config: Path
    log: Path

    def get(self, path: str, token: str | None = TOKEN, **kwargs: object) -> requests.Response:
        """A read with the token (reads are protected by default); ``token=None`` for none."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.url + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def post(
        self, path: str, json: object = None, token: str | None = TOKEN, **kwargs: object
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(self.url + path, json=json, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def status(self) -> dict:
        return self.get("/api/status", TOKEN).json()

    def camera(self) -> dict:
        return self.status()["cameras"][0]

    def wait(self, predicate, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"no {what} within {timeout} s")


def write_api_config(work: Path, replay: Path, port: int, extra: str = "", interval: float = 0.1,
                     api_extra: str = "", cooldown_s: float = 600.0,
                     countdown_s: float = 120, source: str | None = None,
                     alarm_extra: str = "") -> Path:  # fmt: skip
    config = work / "layerwatch.toml"
    config.write_text(
        f'[service]\nstate_dir = "{work / "state"}"\nanalysis_interval_s = {interval}\n'
        f'[[cameras]]\nname = "printer"\n'
        + (source or f'source = {{ type = "replay", path = "{replay}", rate_fps = 0, loop = true }}')
        + "\n"
        f"decision = {{ verify_interval_s = 0, cooldown_s = {cooldown_s} }}\n"
        f"[alarm]\ncountdown_s = {countdown_s}\n{alarm_extra}\n"
        f'[api]\nlisten = "127.0.0.1:{port}"\n{api_extra}\n' + extra
    )
    return config


@contextmanager
def api_service(work: Path, api_extra: str = "", env: dict[str, str] | None = None, calibrated: bool = True,
                interval: float = 0.1, cooldown_s: float = 600.0, state_from: Path | None = None,
                extra: str = "", countdown_s: float = 120,
                source: str | None = None, alarm_extra: str = "") -> Iterator[RunningService]:  # fmt: skip
    """Start the service (token from the systemd credential ``api_token``) and wait for ``/api/``."""
    state = work / "state"
    if state_from is not None and not state.exists():
        shutil.copytree(state_from, state)
    elif calibrated and not state.exists():
        calibrate_scene(state)
    replay = replay_scene(work / "replay") if not (work / "replay").exists() else work / "replay"
    port = free_port()
    config = write_api_config(work, replay, port, extra=extra, api_extra=api_extra, interval=interval,
                              cooldown_s=cooldown_s, countdown_s=countdown_s, source=source,
                              alarm_extra=alarm_extra)  # fmt: skip
    creds = work / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "api_token").write_text(TOKEN + "\n")
    log = (work / "service.log").open("w")
    base = {k: v for k, v in os.environ.items() if k not in ("RTSP_URL", "MQTT_BROKER_URL", "TEST_MODE")}
    proc = subprocess.Popen(  # the log goes to a file: a full pipe would stall the service
        [sys.executable, "-m", "appliance", "run", "--config", str(config)],
        env={**base, "CREDENTIALS_DIRECTORY": str(creds), "LAYERWATCH_API_LISTEN": f"127.0.0.1:{port}",
             **(env or {})}, stdout=log, stderr=log, text=True,
    )  # fmt: skip
    running = RunningService(f"http://127.0.0.1:{port}", proc, state, config, work / "service.log")
    try:
        running.wait(lambda: _ok(running.url), timeout=60, what="API answer")
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _ok(url: str) -> bool:
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}  # api.public_health may be off
        return requests.get(url + "/api/", timeout=1, headers=headers).text == "OK"
    except requests.RequestException:
        return False


def sign_in(page, url: str) -> None:  # type: ignore[no-untyped-def]
    """Open the console and sign in through its form, as a user does on the first visit."""
    page.goto(url + "/")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#login-token", TOKEN)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#app:not([hidden])")


def artefact_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``tmp_path``, copied to ``$CI_ARTEFACTS`` or ``.ci/artefacts`` if present."""
    return tmp_path


def keep_artefact(path: Path) -> None:
    target = os.environ.get("CI_ARTEFACTS") or str(Path(__file__).resolve().parents[1] / ".ci" / "artefacts")
    if Path(target).is_dir():
        shutil.copy(path, Path(target) / path.name)
