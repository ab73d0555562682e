"""Layerwatch: watch a 3D printer through a camera and stop a failed print.

The path of a frame reads straight through the package:
``sources`` (camera -> Frame) -> ``detector`` (Frame -> Detection) -> ``decision`` (Detection ->
state and alerts) -> ``actions`` (MQTT, notifications, hardware). ``config`` holds the typed
configuration tree and ``service`` wires one pipeline per camera into a systemd service.
"""

import os

# numpy's OpenBLAS on one thread, set before numpy is first imported: the camera learner's refit (a few
# hundred rows) gains nothing from a second thread, and on a busy 2-core board a spinning BLAS thread
# beside the inference thread made a 240-answer refit take up to 1.5 s instead of 30 ms. A value the
# user set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
