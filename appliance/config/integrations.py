"""Configuration of the integrations: MQTT, notification channels (and printers)."""

from __future__ import annotations

from pathlib import Path
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

    @property
    def enabled(self) -> bool:
        return self.broker_url is not None


class DiscordConfig(StrictModel):
    """Discord webhook alerts."""

    webhook_url: SecretStr | None = Field(
        None, description="Webhook URL (secret; env DISCORD_WEBHOOK_URL or credential discord_webhook_url)."
    )

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http(s) webhook URL")
        return value


class NotifyConfig(StrictModel):
    """Alert channels."""

    discord: DiscordConfig = Field(default_factory=DiscordConfig)
