"""Print each decision as one line on stdout (the demo, ``layerwatch run --print-decisions``)."""

from __future__ import annotations

import sys
from typing import TextIO

from appliance.decision import Alert, Transition
from appliance.service.pipeline import FrameResult


class ConsoleSink:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def on_frame(self, result: FrameResult) -> None:
        d = result.detection
        self._print(
            f"{result.camera:<10} frame {result.frame.sequence:>5}  score {d.score:5.3f}  "
            f"{d.verdict.value:<9}  state {result.state.value:<14} {d.latency_ms:6.1f} ms"
        )

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        self._print(f"{camera:<10} state {transition.previous.value} -> {transition.state.value}")

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        self._print(
            f"{camera:<10} ALERT {alert.id}: print failure confirmed, score {alert.score:.2f}, "
            f"{alert.votes}/{alert.window} votes, burst {alert.burst_agree}/{alert.burst_frames}"
        )
