"""The one exception hierarchy of Layerwatch.

Every error the appliance raises on purpose derives from :class:`LayerwatchError`; each leaf also
subclasses the builtin it refines, so callers that only know Python's builtins still catch it.
"""

from __future__ import annotations


class LayerwatchError(Exception):
    """Base of every error Layerwatch raises on purpose."""


class ConfigError(LayerwatchError, ValueError):
    """The configuration is invalid. ``problems`` holds ``(key_path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = [f"{path}: {message}" for path, message in problems]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines))


class SourceError(LayerwatchError, IOError):
    """A frame source could not deliver a frame."""


class SourceUnavailableError(SourceError):
    """The camera cannot be reached now (nothing listening, dead server, device missing)."""


class SourceFrozenError(SourceError):
    """The camera is connected but has delivered no new frame for too long."""


class SourceDependencyError(SourceError):
    """A source needs an optional package that is not installed (e.g. picamera2)."""


class DetectorError(LayerwatchError, RuntimeError):
    """The detector could not load its model or score a frame."""


class ModelFormatError(DetectorError, ValueError):
    """A model file does not follow the Layerwatch model contract."""


class BackendUnavailableError(DetectorError):
    """No runtime for the requested backend is installed on this device."""


class CalibrationError(LayerwatchError, ValueError):
    """Calibration data is missing, too small or does not match the model."""


class ActionError(LayerwatchError, RuntimeError):
    """An action channel (MQTT, notifier, printer, hardware) failed."""


class EndOfStreamError(SourceError, EOFError):
    """A finite source (replay) has no more frames."""
