"""``layerwatch demo``: the service on the bundled replay clip, the shipped model, no broker, no cloud.

The story is the decision engine's, with timings shortened to the clip's few seconds: the first
failure vote makes the camera ``suspect``, a verification burst of fresh frames confirms it
(``failure``, one ALERT line), the demo then acknowledges the alert as a person would with the
console's Acknowledge button (``cooldown``: no new alert for ``COOLDOWN_FRAMES`` frames' time), and
the camera goes back to ``watching``, where the next failure votes start it again. The clip's frames
are web photos of failed prints (appliance/defaults/README.md), not a calibrated camera, and there
is no cloud judge, so frames the model is unsure of count as failure votes
(``uncertain_counts_as_failure``, the cautious setting). A real printer uses the config tree's
defaults.

The web console listens on 127.0.0.1 only; the run ends with a summary: frames, alerts, where each
evidence image was written, and what to try next.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from appliance.config.api import ApiConfig
from appliance.config.model import CameraConfig, DecisionConfig, LayerwatchConfig, ServiceConfig
from appliance.config.sources import ReplaySourceConfig
from appliance.decision import Alert, Transition
from appliance.service.commands import Command, CommandKind, CommandQueue
from appliance.service.pipeline import FrameResult

DEMO_CLIP = Path(__file__).resolve().parent / "defaults" / "demo.mp4"
DEMO_PORT = 8080
ACK_AFTER_FRAMES = 10  # the demo acknowledges an alert this many frames after it was raised
COOLDOWN_FRAMES = 25  # cooldown_s is this many frames' time at the clip's rate


def demo_state_dir() -> Path:
    """``$LAYERWATCH_STATE_DIR``, else ``<tmp>/layerwatch-demo``."""
    return Path(os.environ.get("LAYERWATCH_STATE_DIR") or Path(tempfile.gettempdir()) / "layerwatch-demo")


def demo_config(rate_fps: float = 10.0, loop: bool = False, port: int | None = DEMO_PORT) -> LayerwatchConfig:
    """The demo's configuration; ``port`` None: no web console."""
    cooldown_s = COOLDOWN_FRAMES / rate_fps if rate_fps > 0 else 1.0
    return LayerwatchConfig(
        # errors only: the demo prints each state change and alert itself, once
        service=ServiceConfig(state_dir=demo_state_dir(), analysis_interval_s=0.0, log_level="error"),
        api=ApiConfig(listen=f"127.0.0.1:{port}") if port else ApiConfig(enabled=False),
        cameras=[
            CameraConfig(
                name="demo",
                source=ReplaySourceConfig(path=DEMO_CLIP, rate_fps=rate_fps, loop=loop),
                # no cloud judge and no calibration here: unsure frames count as failure votes
                decision=DecisionConfig(
                    verify_interval_s=0.0, cooldown_s=cooldown_s, uncertain_counts_as_failure=True
                ),
            )
        ],
    )


def port_taken(port: int) -> str | None:
    """Why the console cannot listen on 127.0.0.1:``port``, or None when it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


class DemoReport:
    """An action sink: counts what the run showed, and acknowledges each alert ``ACK_AFTER_FRAMES``
    frames after it was raised, as a person on the console would."""

    def __init__(self, commands: CommandQueue, stream: TextIO | None = None):
        self.commands = commands
        self.stream = stream or sys.stdout
        self.frames = 0
        self.states: list[str] = ["starting"]
        self.alerts: list[Alert] = []
        self.evidence: list[Path] = []
        self._ack_at: int | None = None

    def on_frame(self, result: FrameResult) -> None:
        self.frames += 1
        if self._ack_at is not None and self.frames >= self._ack_at:
            self._ack_at = None
            print(
                f"{result.camera:<10} acknowledged, as with the console's Acknowledge button",
                file=self.stream,
            )
            self.commands.submit(Command(CommandKind.ACKNOWLEDGE, result.camera, origin="demo"))

    def on_transition(self, camera: str, transition: Transition, detail: dict[str, object]) -> None:
        if self.states[-1] != transition.state.value:
            self.states.append(transition.state.value)

    def on_alert(self, camera: str, alert: Alert, result: FrameResult, evidence_jpeg: bytes) -> None:
        self.alerts.append(alert)
        name = f"{alert.id}-{alert.repeat}.jpg"
        self.evidence.append(demo_state_dir() / "cameras" / camera / "alerts" / name)
        self._ack_at = self.frames + ACK_AFTER_FRAMES

    def summary(self, port: int | None) -> list[str]:
        shown = ", ".join(dict.fromkeys(self.states))
        lines = [
            f"summary: {self.frames} frames analysed, {len(self.alerts)} alert(s); states shown: {shown}"
        ]
        if self.evidence:
            more = f" (the other {len(self.evidence) - 1} beside it)" if len(self.evidence) > 1 else ""
            lines.append(f"evidence image: {self.evidence[0]}{more}")
        console = f"http://127.0.0.1:{port}/ with --loop" if port else "off (--port)"
        lines += [
            "next: on your printer, `layerwatch calibrate` (its camera's normal look), then "
            "`layerwatch run`;",
            f"      the console: {console}; MQTT and Home Assistant: the [mqtt] table (README)",
        ]
        return lines


def run_demo(rate_fps: float, loop: bool, port: int | None, stream: TextIO | None = None) -> int:
    """The ``layerwatch demo`` command; returns the exit code."""
    from appliance.service.logging_setup import setup_logging
    from appliance.service.runner import Service

    out = stream or sys.stdout
    if stream is None:  # `layerwatch demo | head`: a closed pipe ends the demo, as with any command
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if port:
        problem = port_taken(port)
        if problem:
            print(
                f"layerwatch demo: the console cannot listen on 127.0.0.1:{port} ({problem}; another "
                f"demo or layerwatch?): stop it, or pick a free port with --port N (--port 0: no console)",
                file=sys.stderr,
            )
            return 1
    config = demo_config(rate_fps, loop, port)
    setup_logging(config.service.log_level)
    print(
        "Layerwatch demo: the bundled replay clip, the shipped model, no broker, no cloud "
        "(uncertain frames count as failure votes)",
        file=out,
    )
    if port:
        token = config.service.state_dir / "api_token"
        print(
            f"console: http://127.0.0.1:{port}/ (this machine only; the page asks for the token in {token})"
            + ("" if loop else "; up while the clip plays, --loop keeps it up until Ctrl-C"),
            file=out,
            flush=True,
        )
    service = Service(config, print_decisions=True)
    report = DemoReport(service.commands, out)
    service.context.sinks.append(report)  # build_sinks extends this list
    service.install_signal_handlers()
    code = service.run()
    for line in report.summary(port):
        print(line, file=out)
    return code
