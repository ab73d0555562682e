"""The console's settings view is the running configuration with every secret masked: passwords, tokens,
API keys, webhook URLs, credentials inside URLs."""

from __future__ import annotations

import json

from appliance.api.routes_status import masked
from appliance.config.model import LayerwatchConfig

SECRETS = ("brokerpw", "camerapw", "bot123:abc", "hooksecret", "printerkey", "apitoken", "brokeruser")


def test_no_secret_in_the_settings_view():
    config = LayerwatchConfig.model_validate({
        "cameras": [{"name": "printer",
                     "source": {"type": "rtsp", "url": "rtsp://admin:camerapw@10.0.0.5:554/stream"}}],
        "mqtt": {"broker_url": "mqtt://broker.local:1883", "username": "brokeruser", "password": "brokerpw"},
        "notify": {"telegram": {"bot_token": "bot123:abc", "chat_id": "-100"},
                   "discord": {"webhook_url": "https://discord.com/api/webhooks/1/hooksecret"}},
        "printer": {"type": "octoprint", "url": "http://octopi.local", "api_key": "printerkey"},
        "api": {"token": "apitoken"},
    })  # fmt: skip
    view = json.dumps(masked(config.model_dump(mode="json")))
    for secret in SECRETS:
        assert secret not in view, secret
    settings = json.loads(view)
    assert settings["cameras"][0]["source"]["url"] == "rtsp://***@10.0.0.5:554/stream"
    assert settings["printer"]["url"] == "http://octopi.local" and settings["api"]["listen"] == "0.0.0.0:8080"


def test_the_name_of_a_secret_s_environment_variable_is_shown():
    """Issue 32 defect 12: ``api_key_env`` names the variable that holds the key; it is not the secret."""
    view = masked({"cloud": {"openai_compatible": {"api_key": "sk-1", "api_key_env": "OPENROUTER_API_KEY"}}})
    assert view["cloud"]["openai_compatible"] == {"api_key": "***", "api_key_env": "OPENROUTER_API_KEY"}
