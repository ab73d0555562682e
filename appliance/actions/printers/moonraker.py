"""Moonraker's HTTP API (Klipper), ``X-Api-Key`` if the server asks for one.

* state: ``GET /printer/objects/query?print_stats&virtual_sdcard`` ->
  ``result.status.print_stats.state`` (``standby``, ``printing``, ``paused``, ``complete``,
  ``cancelled``, ``error``), ``print_stats.filename``, ``virtual_sdcard.progress`` (0..1);
* pause: ``POST /printer/print/pause``; cancel: ``POST /printer/print/cancel``.
"""

from __future__ import annotations

from appliance.actions.printers import HttpPrinter, PrinterStatus


class MoonrakerClient(HttpPrinter):
    name = "moonraker"

    def status(self) -> PrinterStatus:
        data = self.json("/printer/objects/query?print_stats&virtual_sdcard")
        status = (data.get("result") or {}).get("status") or {}
        stats = status.get("print_stats") or {}
        state = str(stats.get("state") or "unknown").lower()
        progress = (status.get("virtual_sdcard") or {}).get("progress")
        file = stats.get("filename")
        return PrinterStatus(
            state=state,
            printing=state == "printing",
            active=state in ("printing", "paused"),
            progress=round(float(progress) * 100, 1) if isinstance(progress, int | float) else None,
            file=file or None if isinstance(file, str) else None,
        )

    def pause(self) -> None:
        self.request("POST", "/printer/print/pause")

    def cancel(self) -> None:
        self.request("POST", "/printer/print/cancel")
