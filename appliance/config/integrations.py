"""Configuration of the integrations: MQTT, notification channels (Discord, Telegram) and printers.

Secrets (broker password, webhook URL, bot token, printer API key) are ``SecretStr``: they print as
``**********`` and may come from systemd credentials instead of the TOML file (see
:data:`appliance.config.loader.CREDENTIAL_FILES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from appliance.config.base import StrictModel


class MqttConfig(StrictModel):
    """MQTT broker connection and topics (paho-mqtt v2)."""

    broker_url: str | None = Field(
        None, description="mqtt://host:1883 or mqtts://host:8883 (env MQTT_BROKER_URL); unset disables MQTT."
    )
    username: str | None = Field(None, description="Broker user.")
    password: SecretStr | None = Field(
        None, description="Broker password (secret; credential mqtt_password)."
    )
    prefix: str = Field("layerwatch", description="Topic prefix: <prefix>/<device_id>/<camera>/...")
    device_id: str = Field("layerwatch", description="This appliance's id in topics and discovery.")
    status_topic: str | None = Field(
        None,
        description="Topic for the legacy {timestamp, print_failed, description} message (env MQTT_TOPIC).",
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive in seconds.")
    ca_file: Path | None = Field(None, description="CA bundle for mqtts:// (default: system CAs).")
    client_cert: Path | None = Field(None, description="Client certificate for mutual TLS.")
    client_key: Path | None = Field(None, description="Client private key for mutual TLS.")
    discovery: bool = Field(True, description="Publish Home Assistant MQTT discovery (device-based).")
    discovery_prefix: str = Field(
        "homeassistant", description="Home Assistant's discovery prefix (its MQTT integration setting)."
    )
    telemetry_interval_s: float = Field(
        30.0, ge=1, le=3600, description="Seconds between messages on <prefix>/<device_id>/telemetry."
    )
    state_interval_s: float = Field(
        5.0,
        ge=1,
        le=300,
        description="Seconds between republishes of each camera's retained state when nothing changes "
        "(its time, camera_status and error stay this fresh even while no frame arrives).",
    )
    max_events_per_hour: int = Field(
        60,
        ge=0,
        description="Alert events per hour on MQTT (0: no limit). Over it, test alarms are dropped; "
        "a real failure alert is still sent, with a log line (an alert is never dropped).",
    )
    event_max_age_s: float = Field(
        86400.0, ge=60, description="An alert event still undelivered after this many seconds is dropped."
    )

    @field_validator("broker_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise ValueError(f"must look like mqtt://host:1883 or mqtts://host:8883, got {value!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError(f"bad port in {value!r}") from exc
        return value

    @field_validator("device_id", "prefix")
    @classmethod
    def _topic_part(cls, value: str) -> str:
        if not value or any(c in value for c in "+#") or value.startswith("/") or value.endswith("/"):
            raise ValueError("must be a non-empty topic part without +, # or a leading/trailing /")
        return value

    @property
    def enabled(self) -> bool:
        return self.broker_url is not None


class ChannelConfig(StrictModel):
    """What every notification channel shares: rate limit, timeouts and retries."""

    max_alerts_per_hour: int = Field(
        6,
        ge=0,
        description="Alerts per hour on this channel (0: no limit). Over it, test alarms are dropped; "
        "a real failure alert is still sent, with a log line (an alert is never dropped).",
    )
    send_repeats: bool = Field(
        True, description="Post reminders of an unacknowledged failure (raised after decision.cooldown_s)."
    )
    timeout_s: float = Field(15.0, gt=0, le=120, description="Seconds one HTTP request may take.")
    retry_backoff_s: float = Field(
        2.0, gt=0, le=600, description="First wait in seconds after a failed delivery; doubles each time."
    )
    retry_backoff_max_s: float = Field(300.0, gt=0, description="Longest wait between retries in seconds.")
    max_age_s: float = Field(
        86400.0, ge=60, description="An alert still undelivered after this many seconds is dropped."
    )


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value


class DiscordConfig(ChannelConfig):
    """Discord webhook alerts: an embed and the evidence image as an attachment."""

    webhook_url: SecretStr | None = Field(
        None, description="Webhook URL (secret; env DISCORD_WEBHOOK_URL or credential discord_webhook_url)."
    )
    username: str | None = Field(None, description="Name the webhook posts under (default: the webhook's).")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _http_url(value.get_secret_value())
        return value

    @property
    def enabled(self) -> bool:
        return self.webhook_url is not None


class TelegramConfig(ChannelConfig):
    """Telegram bot alerts: ``sendPhoto`` with a caption, optionally into a forum topic."""

    bot_token: SecretStr | None = Field(
        None, description="Bot token from @BotFather (secret; credential telegram_bot_token)."
    )
    chat_id: str | None = Field(None, description="Chat id (e.g. -1001234567890) or @channelusername.")
    message_thread_id: int | None = Field(
        None, description="Forum topic (thread) id inside the chat; unset: the chat's main thread."
    )
    api_url: str = Field("https://api.telegram.org", description="Bot API base URL (a local Bot API server).")

    @field_validator("api_url")
    @classmethod
    def _api(cls, value: str) -> str:
        return _http_url(value).rstrip("/")

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None and bool(self.chat_id)


class NotifyConfig(StrictModel):
    """Alert channels."""

    discord: DiscordConfig = Field(default_factory=DiscordConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)


class _PrinterBase(StrictModel):
    url: str = Field(description="Base URL of the printer's server, e.g. http://octopi.local.")
    api_key: SecretStr | None = Field(
        None, description="API key sent as X-Api-Key (secret; credential printer_api_key)."
    )
    action: Literal["none", "pause", "cancel"] = Field(
        "pause", description="What to do after a confirmed failure once alarm.countdown_s has passed."
    )
    camera: str | None = Field(None, description="The camera watching this printer; unset: every camera.")
    poll_interval_s: float = Field(
        10.0, ge=0, le=3600, description="Seconds between printer state polls (0: do not poll)."
    )
    watch_only_while_printing: bool = Field(
        True, description="Pause monitoring while no job is printing or paused (an idle printer: no alarm)."
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="Seconds one HTTP request may take.")
    retries: int = Field(3, ge=0, le=20, description="Extra attempts when the pause/cancel request fails.")
    retry_backoff_s: float = Field(2.0, ge=0, le=60, description="Seconds before the first retry; doubles.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value).rstrip("/")


class OctoPrintConfig(_PrinterBase):
    """OctoPrint: ``POST /api/job`` with ``{"command": "pause", "action": "pause"}`` or ``cancel``."""

    type: Literal["octoprint"] = "octoprint"


class MoonrakerConfig(_PrinterBase):
    """Moonraker (Klipper): ``POST /printer/print/pause`` or ``/printer/print/cancel``."""

    type: Literal["moonraker"] = "moonraker"


PrinterConfig = Annotated[OctoPrintConfig | MoonrakerConfig, Field(discriminator="type")]
