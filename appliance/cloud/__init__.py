"""Cloud fallback: a second opinion for the frames the on-device model is unsure of.

``create_judge`` builds what ``cloud.type`` asks for: nothing (``off``, the default), the
``bedrock`` plugin (:mod:`.bedrock`, boto3 imported only then) or the ``openai_compatible`` plugin
(:mod:`.openai_compatible`), wrapped in :class:`~appliance.cloud.judge.CloudJudge` (budget, circuit
breaker, timeout, telemetry). The path of a question: :mod:`.privacy` (what is uploaded) ->
plugin (how it is sent) -> :mod:`.verdict` (how the answer is checked) -> :mod:`.judge`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from appliance.cloud.judge import CloudJudge, CloudState
from appliance.errors import CloudCredentialsError, CloudError

if TYPE_CHECKING:
    from appliance.cloud.backend import JudgeBackend
    from appliance.config.cloud import CloudConfig
    from appliance.config.model import LayerwatchConfig
    from appliance.service.pipeline import Judge
    from appliance.service.wiring import ServiceContext

__all__ = ["CloudJudge", "CloudState", "build_backend", "create_judge"]

logger = logging.getLogger(__name__)


def build_backend(config: CloudConfig) -> JudgeBackend:
    """The plugin ``config.type`` names; :class:`CloudError` when it cannot be built."""
    if config.type == "bedrock":
        try:
            from appliance.cloud.bedrock import BedrockJudge
        except ImportError as exc:
            raise CloudError(f"the bedrock judge needs boto3 (pip install boto3): {exc}") from None
        return BedrockJudge(config.bedrock, config.request_timeout_s)
    if config.type == "openai_compatible":
        from appliance.cloud.openai_compatible import OpenAICompatibleJudge

        return OpenAICompatibleJudge(config.openai_compatible, config.request_timeout_s)
    raise CloudError(f"no judge plugin called {config.type!r}")


def create_judge(config: LayerwatchConfig, context: ServiceContext) -> Judge | None:
    """The configured judge, or None (the default: the cloud is off, every decision is local).

    A judge that cannot be built (boto3 missing, an unreadable API key file) is logged, its state
    published, and the appliance runs local-only rather than not at all.
    """
    cloud = config.cloud
    if cloud.type == "off":
        context.telemetry["cloud_state"] = float(CloudState.OFF)
        logger.info("cloud judge off: uncertain frames are decided on the device")
        return None
    try:
        backend = build_backend(cloud)
    except CloudError as exc:
        from appliance.actions.dispatcher import event_hub

        state = CloudState.CREDENTIALS if isinstance(exc, CloudCredentialsError) else CloudState.UNREACHABLE
        context.telemetry["cloud_state"] = float(state)
        reason = f"cloud judge {cloud.type} off: {exc}"
        logger.error("%s; the cameras are watched with local decisions only", reason)
        context.notes.append(reason)  # on systemd's STATUS= line
        event_hub(context).emit("cloud_judge_off", {"judge": cloud.type, "message": str(exc)})
        return None
    from appliance.cloud.budget import CallBudget

    budget = CallBudget(cloud.budget, context.state_dir / "cloud" / "budget.json")
    threshold = config.detector.threshold if config.detector.threshold is not None else 0.5
    return CloudJudge(cloud, backend, budget, context.telemetry, lean_threshold=threshold)
