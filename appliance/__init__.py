"""Layerwatch: watch a 3D printer through a camera and stop a failed print.

The path of a frame reads straight through the package:
``sources`` (camera -> Frame) -> ``detector`` (Frame -> Detection) -> ``decision`` (Detection ->
state and alerts) -> ``actions`` (MQTT, notifications, hardware). ``config`` holds the typed
configuration tree and ``service`` wires one pipeline per camera into a systemd service.
"""

__version__ = "0.1.0"
