"""Discord and Telegram alerts: one :class:`~appliance.actions.dispatcher.AlertDispatcher` in front
of every configured HTTP channel, each with its own outbox under ``<state_dir>/outbox/<channel>``
and its own rate limit.

Wiring: listed in :data:`appliance.service.wiring.SINK_MODULES`; nothing is created when neither
``notify.discord.webhook_url`` nor ``notify.telegram.bot_token`` + ``chat_id`` is set, and the
channels' modules (and ``requests``, about 5 MB of the service's peak memory) are imported only then.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from appliance.actions.dispatcher import (
    AlertDispatcher,
    ChannelPolicy,
    Notifier,
    event_hub,
    set_aside_reporter,
)

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.service.pipeline import ActionSink
    from appliance.service.wiring import ServiceContext

logger = logging.getLogger(__name__)


def create_sinks(config: LayerwatchConfig, context: ServiceContext) -> list[ActionSink]:
    channels: list[tuple[Notifier, ChannelPolicy]] = []
    outbox = context.state_dir / "outbox"
    discord, telegram = config.notify.discord, config.notify.telegram
    if discord.enabled:
        from appliance.actions.discord import DiscordNotifier  # requests only when a channel is set

        policy = ChannelPolicy(discord.max_alerts_per_hour, discord.send_repeats)
        discord_notifier = DiscordNotifier(discord, outbox / "discord")
        discord_notifier.worker.outbox.storage = context.storage  # a full disk shows on state, light, systemd
        discord_notifier.worker.outbox.on_set_aside = set_aside_reporter(event_hub(context), "discord")
        channels.append((discord_notifier, policy))
    if telegram.enabled:
        from appliance.actions.telegram import TelegramNotifier

        policy = ChannelPolicy(telegram.max_alerts_per_hour, telegram.send_repeats)
        telegram_notifier = TelegramNotifier(telegram, outbox / "telegram")
        telegram_notifier.worker.outbox.storage = context.storage
        telegram_notifier.worker.outbox.on_set_aside = set_aside_reporter(event_hub(context), "telegram")
        channels.append((telegram_notifier, policy))
    elif telegram.bot_token is not None or telegram.chat_id:
        logger.warning("Telegram needs both notify.telegram.bot_token and chat_id: not enabled")
    return [AlertDispatcher(channels, context.commands)] if channels else []
