"""Printer servers Layerwatch can pause or cancel a print on: one module per ``printer.type``.

Each client offers ``status()`` (is a job printing, its progress), ``pause()`` and ``cancel()``
over HTTP with ``requests`` (:mod:`.http`, imported only with a printer configured: the job-end
rule here is used by the history without one); network trouble and 5xx raise
:class:`~appliance.errors.PrinterError` (worth a retry), a 4xx raises
:class:`~appliance.errors.PrinterRefusedError` (not worth one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


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
