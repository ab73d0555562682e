"""The boot test's CSI check (boot-report.py, with layerwatch.boot_checks): Layerwatch's CSI source
opened through the real picamera2 and libcamera of the image, on a machine with no camera (QEMU).

It proves the chain up to the hardware: the source imports picamera2, picamera2 starts libcamera's
CameraManager, and the missing camera comes back as the source's own SourceUnavailableError (the
service then says "check the ribbon cable" and retries) rather than an import error. Prints one JSON
line: the exception's class and message, and the cameras libcamera found.
"""

import json
import time

from appliance.config.sources import CsiSourceConfig
from appliance.errors import SourceDependencyError, SourceUnavailableError
from appliance.sources.csi import CsiSource

started = time.monotonic()
source = CsiSource("csi-check", CsiSourceConfig(type="csi"))
result: dict[str, object] = {}
try:
    source.open()
    result["opened"] = True  # a camera is there (not in QEMU)
    source.close()
except SourceDependencyError as exc:
    result.update(opened=False, error="SourceDependencyError", message=str(exc))
except SourceUnavailableError as exc:
    result.update(opened=False, error="SourceUnavailableError", message=str(exc))
from picamera2 import Picamera2  # noqa: E402  (after the source's own lazy import)

result["global_camera_info"] = Picamera2.global_camera_info()
result["seconds"] = round(time.monotonic() - started, 2)
print(json.dumps(result, default=str))
