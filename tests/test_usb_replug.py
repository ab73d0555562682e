"""A USB camera given by path (the udev name ``/dev/layerwatch-cam``) that is absent: ``layerwatch run``
keeps running with that camera ``camera_offline`` (no exit 78) and watches it once the device appears.

This machine has no V4L2 device and cannot load ``v4l2loopback``, so the service runs in a child process
whose OpenCV V4L2 open reads a video file at the device path instead (a loopback stand-in; everything
else is the real service): the test creates the path (a symlink to a clip, as udev makes one) and
removes it again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.service_harness import NotifyListener

# the V4L2 stand-in: cv2.VideoCapture(path, cv2.CAP_V4L2, params) reads the file at path, 10 frames/s,
# looped; a path that is gone reads as an unplugged camera (read fails)
FAKE_V4L2 = textwrap.dedent(
    """
    import os, sys, time
    import cv2

    real = cv2.VideoCapture

    class FileCamera:
        def __init__(self, path):
            self.path, self.capture, self.due = path, real(path, cv2.CAP_FFMPEG), time.monotonic()

        def isOpened(self):
            return self.capture.isOpened()

        def get(self, prop):
            return self.capture.get(prop)

        def read(self):
            time.sleep(max(0.0, self.due - time.monotonic()))
            self.due = time.monotonic() + 0.1
            if not os.path.exists(self.path):
                return False, None
            ok, image = self.capture.read()
            if not ok:
                self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self.capture.read()
            return ok, image

        def release(self):
            self.capture.release()

    def video_capture(path, api=cv2.CAP_ANY, params=()):
        return FileCamera(path) if api == cv2.CAP_V4L2 else real(path, api, list(params))

    cv2.VideoCapture = video_capture
    from appliance.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


def test_an_absent_usb_camera_is_offline_until_the_device_appears(tmp_path: Path, synthetic_clip: Path):
    device = tmp_path / "layerwatch-cam"
    config = tmp_path / "layerwatch.toml"
    config.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\nanalysis_interval_s = 0.2\n'
        f'[api]\nenabled = false\n[[cameras]]\nname = "printer"\n'
        f'[cameras.source]\ntype = "usb"\ndevice = "{device}"\n'
    )
    wrapper = tmp_path / "fake_v4l2.py"
    wrapper.write_text(FAKE_V4L2)
    listener = NotifyListener(tmp_path / "notify.sock")
    log = tmp_path / "service.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "PYTHONPATH": str(Path(__file__).parents[1])}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(wrapper), "run", "--config", str(config)], env=env, stdout=out, stderr=out
        )
    try:
        listener.wait_for("READY=1", timeout=60)  # a dead camera does not block READY
        listener.wait_for("printer: camera_offline", timeout=10)
        assert proc.poll() is None, log.read_text()  # no exit 78, no exit at all
        os.symlink(synthetic_clip, device)  # plugged in: udev makes the symlink
        for _ in range(200):  # analysed frames again: a state other than camera_offline, frames/s > 0
            listener.wait_for("STATUS=printer:", timeout=15)
            status = listener.messages[-1][1]
            if "camera_offline" not in status and " 0.0 fps" not in status:
                break
            listener.messages.clear()
        else:
            raise AssertionError(f"never watched again; last status {status!r}")
        device.unlink()  # unplugged again: offline again, still running
        listener.messages.clear()
        listener.wait_for("printer: camera_offline", timeout=20)
        assert proc.poll() is None
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
        listener.close()
        if device.is_symlink():
            device.unlink()
    assert code == 0, log.read_text()
    text = log.read_text()
    assert f"{device} does not exist" in text and "Traceback" not in text
