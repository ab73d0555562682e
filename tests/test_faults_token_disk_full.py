"""Fault suite, issue 33 item 7: a disk full at the first start keeps the generated API token in memory.

``layerwatch run`` starts with its state folder on a real full file system (a 4 MB tmpfs, filled) and no
configured token. The token cannot be stored: the service says where it will go, shows the failed write on
systemd's ``STATUS=``, refuses control without it and accepts nothing else. Once space is freed the token is
written to ``<state_dir>/api_token`` (mode 0600) within seconds, and it is the one the running service
takes (202) - no restart.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
import requests

from tests.fault_process import LiveService
from tests.mqtt_fixtures import free_port
from tests.service_harness import NotifyListener, write_config
from tests.test_faults_full_disk import fill, small_disk  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("shipped_model")

STORED_WITHIN_S = 10.0  # RETRY_S is 2 s


def test_a_token_generated_on_a_full_disk_is_stored_when_space_returns(
    tmp_path: Path,
    synthetic_clip: Path,
    small_disk: Path,  # noqa: F811
) -> None:
    filler = fill(small_disk)
    port = free_port()
    config = write_config(tmp_path, synthetic_clip)
    listener = NotifyListener(tmp_path / "notify.sock")
    env = {"LAYERWATCH_API_LISTEN": f"127.0.0.1:{port}", "NOTIFY_SOCKET": str(listener.path)}
    service = LiveService(config, env)
    url = f"http://127.0.0.1:{port}/api/control/pause"
    try:
        service.wait_log("API token held in memory", timeout=60)
        listener.wait_for("disk full (api token", timeout=30)  # systemd STATUS= says so
        service.wait_frames(3)
        assert not (small_disk / "api_token").exists()
        refused = requests.post(url, json={}, timeout=10)
        wrong = requests.post(url, json={}, headers={"Authorization": "Bearer guess"}, timeout=10)
        filler.unlink()
        freed = time.monotonic()
        stored_at = service.wait_log("API token stored in", timeout=STORED_WITHIN_S)
        token = (small_disk / "api_token").read_text().strip()
        mode = stat.S_IMODE((small_disk / "api_token").stat().st_mode)
        accepted = requests.post(url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        rc, _ = service.terminate()
    finally:
        service.kill()
        listener.close()
    log = service.log()
    print(f"token stored {stored_at - freed:.1f} s after space returned")
    assert rc == 0
    assert refused.status_code == 401 and wrong.status_code == 401
    assert accepted.status_code == 202, accepted.text
    assert mode == 0o600
    assert str(small_disk / "api_token") in log and token not in log
