"""Checks of a valid configuration that need the file system but no hardware and no network.

A replay file or folder that is not there, a model file, a TLS file or an API key file: each is a
configuration error, reported with its key path by ``check-config`` and by ``run`` before anything is
opened, so the service exits 78 (which the unit's ``RestartPreventExitStatus=78`` does not restart)
instead of failing later with exit 1 and being restarted in a loop.

A USB device path (``/dev/video0``, the udev name ``/dev/layerwatch-cam``) that is absent is not an
error: a webcam is unplugged and plugged in again, so that camera is ``camera_offline`` until the
device appears (:mod:`appliance.sources.usb`) while the others are watched; :func:`file_warnings` says
so for ``check-config``.

A YOLO box model's ``failure_classes`` are checked against the model's own class names (its metadata,
or ``class_names``), as the detector will check them at start: a name the model lacks is an error here.

Wiring: :func:`appliance.config.loader.load_config` calls :func:`file_problems` after validation.
"""

from __future__ import annotations

from pathlib import Path

from appliance.config.model import LayerwatchConfig
from appliance.config.yolo import YoloDetectorConfig
from appliance.errors import ModelFormatError


def _missing(key: str, path: Path | None, what: str, *, folder_ok: bool = False) -> list[tuple[str, str]]:
    if path is None:
        return []
    if folder_ok and path.is_dir():
        return []
    if path.is_file() or (what == "device" and path.exists()):
        return []
    kind = "file or folder" if folder_ok else what
    return [(key, f"{path} does not exist (a {kind} is needed)")]


def file_problems(config: LayerwatchConfig) -> list[tuple[str, str]]:
    """Every path in ``config`` that must exist and does not, as ``(key path, message)``."""
    problems: list[tuple[str, str]] = []
    problems += _missing("detector.model", config.detector.model, "model file")
    for index, camera in enumerate(config.cameras):
        source = camera.source
        key = f"cameras.{index}.source"
        if source.type == "replay":
            problems += _missing(f"{key}.path", source.path, "video file", folder_ok=True)
    mqtt = config.mqtt
    for name in ("ca_file", "client_cert", "client_key"):
        problems += _missing(f"mqtt.{name}", getattr(mqtt, name), "file")
    problems += _missing(
        "cloud.openai_compatible.api_key_file", config.cloud.openai_compatible.api_key_file, "file"
    )
    detector = config.detector
    if isinstance(detector, YoloDetectorConfig):
        problems += _failure_class_problems("detector", detector)
    elif detector.second_opinion is not None:
        problems += _failure_class_problems("detector.second_opinion", detector.second_opinion)
    return problems


def _failure_class_problems(key: str, table: YoloDetectorConfig) -> list[tuple[str, str]]:
    """``failure_classes`` checked against the box model's class names (its metadata, or
    ``class_names``), as the detector will at start: a name the model lacks is a config error."""
    from appliance.detector.bundle import default_models_dir
    from appliance.detector.yolo_decode import failure_class_ids, read_metadata
    from appliance.detector.yolo_detector import SHIPPED_BOX_MODEL

    path = table.model or default_models_dir() / SHIPPED_BOX_MODEL
    if not path.is_file():
        return []  # a missing model file is reported above
    try:
        metadata = read_metadata(path, _onnx_metadata(path) if path.suffix == ".onnx" else {})
        names = dict(enumerate(table.class_names)) if table.class_names else metadata.get("names")
        if not isinstance(names, dict):
            names = None
        failure_class_ids(list(table.failure_classes), names, len(names) if names else 0, path.name)
    except (ModelFormatError, OSError) as exc:
        return [(f"{key}.failure_classes", str(exc))]
    return []


def _onnx_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's custom metadata (``names``, ``imgsz``), read with ONNX Runtime."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own error types for unreadable files
        raise ModelFormatError(f"{path}: not a readable ONNX model: {exc}") from None
    return dict(session.get_modelmeta().custom_metadata_map)


def file_warnings(config: LayerwatchConfig) -> list[tuple[str, str]]:
    """Paths that are absent now but may appear (a USB camera's device), as ``(key path, message)``."""
    warnings: list[tuple[str, str]] = []
    for index, camera in enumerate(config.cameras):
        source = camera.source
        if source.type != "usb":
            continue
        device = source.device
        path = Path(f"/dev/video{int(device)}" if isinstance(device, int) or device.isdigit() else device)
        if not path.exists():
            message = f"{path} does not exist now: camera {camera.name} is camera_offline until it is "
            message += "plugged in"
            warnings.append((f"cameras.{index}.source.device", message))
    return warnings
