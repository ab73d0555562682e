"""Moonraker's HTTP API (Klipper), ``X-Api-Key`` if the server asks for one.

* state: ``GET /printer/objects/query?print_stats&virtual_sdcard`` ->
  ``result.status.print_stats.state`` (``standby``, ``printing``, ``paused``, ``complete``,
  ``cancelled``, ``error``), ``print_stats.filename``, ``virtual_sdcard.progress`` (0..1);
* temperatures: ``GET /printer/objects/query?extruder&heater_bed`` -> ``extruder.temperature``,
  ``extruder.target``, ``heater_bed.temperature``, ``heater_bed.target`` (degrees C);
* pause: ``POST /printer/print/pause``; cancel: ``POST /printer/print/cancel``.
"""

from __future__ import annotations

from appliance.actions.printers import PrinterStatus
from appliance.actions.printers.http import HttpPrinter


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

    def temperatures(self) -> dict[str, float]:
        """nozzle_temp, nozzle_target, bed_temp, bed_target in degrees C (those the server reports)."""
        status = (self.json("/printer/objects/query?extruder&heater_bed").get("result") or {}).get(
            "status"
        ) or {}
        out: dict[str, float] = {}
        for obj, prefix in (("extruder", "nozzle"), ("heater_bed", "bed")):
            values = status.get(obj) or {}
            for key, suffix in (("temperature", "temp"), ("target", "target")):
                if isinstance(values.get(key), int | float):
                    out[f"{prefix}_{suffix}"] = float(values[key])
        return out

    def pause(self) -> None:
        self.request("POST", "/printer/print/pause")

    def cancel(self) -> None:
        self.request("POST", "/printer/print/cancel")
