"""Printer telemetry: sensor figures from MQTT (the monitoring system's ``printing/<printer_id>/sensor``
JSON) and from the linked printer (OctoPrint/Moonraker temperatures), a small explainable anomaly
detector (:mod:`.detector`) and the sink that raises its findings as alerts (:mod:`.sink`).

Wiring: :mod:`.sink` is listed in :data:`appliance.service.wiring.SINK_MODULES`.
"""
