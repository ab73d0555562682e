"""OctoPrint's REST API (``X-Api-Key`` header).

* state: ``GET /api/job`` -> ``state`` (``Printing``, ``Paused``, ``Pausing``, ``Operational``,
  ``Offline``, ``Error``...), ``progress.completion`` (percent), ``job.file.name``;
* temperatures: ``GET /api/printer?exclude=sd,state`` -> ``temperature.tool0`` / ``temperature.bed``
  ``actual`` and ``target`` (degrees C; 409 while the printer is not connected);
* pause: ``POST /api/job`` ``{"command": "pause", "action": "pause"}`` (204; 409 if no job);
* cancel: ``POST /api/job`` ``{"command": "cancel"}``.
"""

from __future__ import annotations

from appliance.actions.printers import PrinterStatus
from appliance.actions.printers.http import HttpPrinter

ACTIVE_PREFIXES = ("printing", "paused", "pausing", "resuming")


class OctoPrintClient(HttpPrinter):
    name = "octoprint"

    def status(self) -> PrinterStatus:
        data = self.json("/api/job")
        state = str(data.get("state") or "unknown").lower()
        progress = (data.get("progress") or {}).get("completion")
        file = ((data.get("job") or {}).get("file") or {}).get("name")
        return PrinterStatus(
            state=state,
            printing=state.startswith("printing"),
            active=state.startswith(ACTIVE_PREFIXES),
            progress=round(float(progress), 1) if isinstance(progress, int | float) else None,
            file=file if isinstance(file, str) else None,
        )

    def temperatures(self) -> dict[str, float]:
        """nozzle_temp, nozzle_target, bed_temp, bed_target in degrees C (those the server reports)."""
        temps = self.json("/api/printer?exclude=sd,state").get("temperature") or {}
        out: dict[str, float] = {}
        for obj, prefix in (("tool0", "nozzle"), ("bed", "bed")):
            values = temps.get(obj) or {}
            for key, suffix in (("actual", "temp"), ("target", "target")):
                if isinstance(values.get(key), int | float):
                    out[f"{prefix}_{suffix}"] = float(values[key])
        return out

    def pause(self) -> None:
        self.request("POST", "/api/job", json={"command": "pause", "action": "pause"})

    def cancel(self) -> None:
        self.request("POST", "/api/job", json={"command": "cancel"})
