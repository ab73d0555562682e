"""The ``[api]`` table: the local HTTP API and web console (:mod:`appliance.api`).

The console and the API listen on ``listen`` (``host:port``; port 0 picks a free port, logged). Control
endpoints (acknowledge, pause, cancel print, calibrate, ignore zones, answers) always need the token;
read endpoints (the live camera, status, configuration, alerts) need it too unless ``protect_reads`` is
false; ``/api/`` (health) and ``/metrics`` follow ``public_health`` and ``public_metrics``. The token
comes from the systemd credential ``api_token`` (``$CREDENTIALS_DIRECTORY/api_token``), else ``token``
here, else one is generated at the first start into ``<state_dir>/api_token`` (mode 0600) and its
path logged, never the token.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from appliance.config.base import StrictModel


class ApiConfig(StrictModel):
    """The local web console and HTTP API (FastAPI on uvicorn, on its own thread)."""

    enabled: bool = Field(True, description="Serve the web console and the HTTP API.")
    listen: str = Field(
        "0.0.0.0:8080",
        description="host:port to listen on (0.0.0.0: every interface; port 0: any free port, logged; "
        "env LAYERWATCH_API_LISTEN).",
    )
    token: SecretStr | None = Field(
        None,
        description="Bearer token for control endpoints (secret; credential api_token); unset: generated "
        "once into <state_dir>/api_token.",
    )
    protect_reads: bool = Field(
        True,
        description="Read endpoints (live camera, status, events, alerts, configuration, metrics) need the "
        "token too (the console asks for it once); false: anyone who can reach the port sees them.",
    )
    public_health: bool = Field(
        True, description="GET /api/ (answers OK, tells nothing else) needs no token even with protect_reads."
    )
    public_metrics: bool = Field(
        False,
        description="GET /metrics (Prometheus) needs no token even with protect_reads; false: the scraper "
        "sends Authorization: Bearer <token>.",
    )
    stream_max_fps: float = Field(
        2.0, gt=0, le=30, description="Highest frame rate of the MJPEG live view (frames per second)."
    )
    alerts_kept: int = Field(
        200, ge=1, le=10000, description="Alerts kept in the history (oldest dropped with their images)."
    )
    printer_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Camera name -> printer id for the bridge's /api/printer/{id} paths (default: the "
        "camera name).",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"must be host:port with a port 0-65535, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])
