"""Printer servers Layerwatch can pause or cancel a print on: one module per ``printer.type``.

Each client offers ``status()`` (is a job printing, its progress), ``pause()`` and ``cancel()``
over HTTP with ``requests``; network trouble and 5xx raise :class:`~appliance.errors.PrinterError`
(worth a retry), a 4xx raises :class:`~appliance.errors.PrinterRefusedError` (not worth one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import requests

from appliance.errors import PrinterError, PrinterRefusedError
from appliance.service.log_redaction import register_secret


@dataclass(frozen=True)
class PrinterStatus:
    state: str  # the server's own word, lower case: printing, paused, operational, standby, ...
    printing: bool  # a job is printing right now
    active: bool  # a job is printing or paused (the camera should keep watching)
    progress: float | None = None  # percent, 0..100
    file: str | None = None


class PrinterClient(Protocol):
    name: str

    def status(self) -> PrinterStatus: ...

    def pause(self) -> None: ...

    def cancel(self) -> None: ...


class HttpPrinter:
    """What the OctoPrint and Moonraker clients share: base URL, X-Api-Key, error mapping."""

    name = "printer"

    def __init__(
        self, url: str, api_key: str | None, timeout_s: float, session: requests.Session | None = None
    ):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        if api_key:
            register_secret(api_key)
            self.session.headers["X-Api-Key"] = api_key

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
        except requests.Timeout:
            raise PrinterError(f"{self.name}: no answer within {self.timeout_s:.0f} s") from None
        except requests.RequestException as exc:
            raise PrinterError(f"{self.name}: {type(exc).__name__} (server unreachable)") from None
        if response.status_code >= 500:
            raise PrinterError(f"{self.name}: HTTP {response.status_code} on {method} {path}")
        if response.status_code >= 400:
            raise PrinterRefusedError(f"{self.name}: HTTP {response.status_code} on {method} {path}")
        return response

    def json(self, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            data = self.request("GET", path, **kwargs).json()
        except ValueError:
            raise PrinterError(f"{self.name}: {path} did not answer JSON") from None
        if not isinstance(data, dict):
            raise PrinterError(f"{self.name}: {path} did not answer a JSON object")
        return data


COMPLETED_PERCENT = 99.0  # a job whose last or final progress is at least this completed
ERROR_WORDS = ("error",)
CANCEL_WORDS = ("cancel",)  # OctoPrint's Cancelling, Moonraker's cancelled


def job_end(last_state: str | None, end_state: str, last_progress: float | None,
            final_progress: float | None) -> tuple[str, bool]:  # fmt: skip
    """How a job ended, from the printer's own words: ``(outcome, certain)``.

    ``last_state`` and ``last_progress`` are from the last poll while the job was active, ``end_state``
    and ``final_progress`` from the first poll after it. Completed: the server says ``complete``
    (Moonraker) or the last or final completion reached ``COMPLETED_PERCENT`` (OctoPrint goes from
    Printing at 97 % to Operational at 100 %). Failed: an error state. Cancelled: the server said so
    (``Cancelling``, ``cancelled``): certain; back to idle below ``COMPLETED_PERCENT`` with no such word
    (the poll missed it, or the server cannot tell): ``cancelled`` but not certain. Only a certain end
    may teach the camera (:meth:`appliance.service.camera_answers.CameraAnswers.print_ended`); an
    error is certain for the record, not for the camera (the print may have looked fine).
    """
    progress = [p for p in (last_progress, final_progress) if p is not None]
    words = f"{last_state or ''} {end_state}".lower()
    if end_state.lower().startswith("complete") or (progress and max(progress) >= COMPLETED_PERCENT):
        return "completed", True
    if any(word in words for word in ERROR_WORDS):
        return "failed", False
    return "cancelled", any(word in words for word in CANCEL_WORDS)


def build_printer(config: Any) -> PrinterClient:
    """The client for ``config`` (an OctoPrintConfig or MoonrakerConfig)."""
    api_key = config.api_key.get_secret_value() if config.api_key else None
    if config.type == "octoprint":
        from appliance.actions.printers.octoprint import OctoPrintClient

        return OctoPrintClient(config.url, api_key, config.timeout_s)
    if config.type == "moonraker":
        from appliance.actions.printers.moonraker import MoonrakerClient

        return MoonrakerClient(config.url, api_key, config.timeout_s)
    raise ValueError(f"unknown printer type {config.type!r}")
