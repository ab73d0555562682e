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


class DeliveryError(ActionError):
    """A message could not be delivered now; try again (after ``retry_after_s`` if the peer said)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeliveryRejectedError(ActionError):
    """The peer refused a message for good (4xx other than 429): retrying would not help."""


class PrinterError(ActionError):
    """The printer's server (OctoPrint, Moonraker) could not be reached or refused a request."""


class CommandRejectedError(LayerwatchError, ValueError):
    """A command from outside (an MQTT ``.../set`` message) is unknown or malformed."""


class CloudError(LayerwatchError, RuntimeError):
    """The cloud judge gave no usable verdict for a frame (the local decision then stands)."""


class CloudUnavailableError(CloudError, ConnectionError):
    """The judge's endpoint could not be reached, timed out, throttled or failed (5xx) after retries."""


class CloudReplyError(CloudError, ValueError):
    """The judge answered, but not with a verdict: malformed JSON, a refusal or a rejected (4xx) request."""


class CloudCredentialsError(CloudError, PermissionError):
    """The judge's credentials are missing, expired or revoked (after one refresh)."""


class HardwareError(ActionError):
    """GPIO hardware (status light, buzzer, relay, button, fan) could not be set up or driven."""


class PrinterRefusedError(PrinterError):
    """The printer's server answered but refused (4xx: wrong API key, no job to pause): no retry."""
