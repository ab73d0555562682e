"""Cloud fallback judges for frames the on-device model is unsure of (the cloud issue fills this in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.model import LayerwatchConfig
    from appliance.service.pipeline import Judge
    from appliance.service.wiring import ServiceContext


def create_judge(config: LayerwatchConfig, context: ServiceContext) -> Judge | None:
    """The configured judge, or None (the default: the cloud is off)."""
    return None
