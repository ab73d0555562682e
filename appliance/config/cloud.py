"""Configuration of the cloud judge: the second opinion for frames the on-device model is unsure of.

``[cloud] type`` picks the judge plugin: ``off`` (the default: no frame ever leaves the device),
``bedrock`` (AWS Bedrock Converse, credentials as the RTSP+Bedrock detector documents them) or
``openai_compatible`` (any OpenAI-style chat endpoint with images: OpenRouter, a local model server).
The plugin's own table (``[cloud.bedrock]``, ``[cloud.openai_compatible]``) may be filled in while
the type is ``off``; nothing is sent until ``type`` names it. Budgets, the circuit breaker and the
privacy crop apply to every plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from appliance.config.base import StrictModel

JudgeType = Literal["off", "bedrock", "openai_compatible"]
#: a print area: (x0, y0, x1, y1) as fractions of the frame's width and height, origin top left
PrintArea = tuple[float, float, float, float]


def _check_area(area: PrintArea | None) -> PrintArea | None:
    if area is None:
        return None
    x0, y0, x1, y1 = area
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError("must be [x0, y0, x1, y1] fractions of the frame with 0 <= x0 < x1 <= 1, same for y")
    return area


class BedrockConfig(StrictModel):
    """AWS Bedrock judge (``cloud.type = "bedrock"``): the Converse API with the frame as image bytes."""

    region: str = Field("us-west-2", description="AWS region of Bedrock and STS (env AWS_REGION).")
    role_arn: str | None = Field(
        None,
        description="Role to assume with sts:AssumeRole (env AWS_ROLE_ARN); unset: use the profile's "
        "keys directly.",
    )
    model_id: str | None = Field(
        None, description="Model id or inference profile ARN (env INFERENCE_PROFILE_ARN); needed for bedrock."
    )
    profile: str = Field(
        "default",
        description="Profile in the credentials file (env APP_AWS_PROFILE; AWS_PROFILE is ignored).",
    )
    credentials_file: Path = Field(
        Path("/creds/credentials"),
        description="AWS credentials file in the shared-credentials format (or systemd credential "
        "aws_credentials); re-read at every refresh, so a rotated file is picked up.",
    )
    role_session_name: str = Field(
        "layerwatch", min_length=2, max_length=64, description="RoleSessionName sent with sts:AssumeRole."
    )
    session_duration_s: int = Field(
        3600, ge=900, le=43200, description="Seconds the assumed-role credentials live (DurationSeconds)."
    )
    retry_mode: Literal["standard", "adaptive"] = Field(
        "standard",
        description="botocore retry mode for throttling and 5xx: exponential backoff with jitter "
        "(adaptive adds client-side rate limiting).",
    )
    max_attempts: int = Field(3, ge=1, le=10, description="Attempts per call, the first one included.")
    max_tokens: int = Field(300, ge=50, le=4096, description="Most tokens the model may answer with.")
    endpoint_url: str | None = Field(
        None, description="bedrock-runtime endpoint (a VPC endpoint, or a local test server); unset: AWS's."
    )
    sts_endpoint_url: str | None = Field(
        None, description="STS endpoint (a VPC endpoint, or a local test server); unset: AWS's regional one."
    )


class OpenAICompatibleConfig(StrictModel):
    """Any OpenAI-style chat endpoint with image input (``cloud.type = "openai_compatible"``)."""

    base_url: str = Field(
        "https://openrouter.ai/api/v1", description="API base; ``/chat/completions`` is appended."
    )
    model: str = Field("google/gemini-2.5-flash", min_length=1, description="Vision-capable model id.")
    api_key: SecretStr | None = Field(
        None, description="API key (prefer api_key_file or api_key_env: keep secrets out of the TOML file)."
    )
    api_key_file: Path | None = Field(
        None, description="File holding the API key, e.g. a systemd credential; wins over the others."
    )
    api_key_env: str | None = Field(
        "OPENROUTER_API_KEY", description="Environment variable holding the API key (used when set)."
    )
    max_attempts: int = Field(3, ge=1, le=10, description="Attempts per call, the first one included.")
    backoff_base_s: float = Field(
        0.5, gt=0, le=30, description="First retry waits up to this many seconds; doubled per attempt."
    )
    backoff_max_s: float = Field(8.0, gt=0, le=120, description="Longest wait between attempts (seconds).")
    max_tokens: int = Field(300, ge=50, le=4096, description="Most tokens the model may answer with.")
    json_mode: bool = Field(
        False, description='Ask for response_format {"type": "json_object"} (not every server supports it).'
    )


class BudgetConfig(StrictModel):
    """How much the judge may be asked. Counted across restarts (kept in the state folder)."""

    calls_per_hour: int = Field(30, ge=0, description="Most judge calls in any rolling hour (all cameras).")
    calls_per_day: int = Field(200, ge=0, description="Most judge calls in any rolling 24 hours.")
    monthly_spend_usd: float = Field(
        5.0, ge=0, description="Estimated spend (US dollars) per calendar month (UTC) after which calls stop."
    )
    cost_per_call_usd: float = Field(
        0.003, ge=0, description="Estimated cost of one call in US dollars, charged when the call is sent."
    )
    usd_per_1k_input_tokens: float = Field(
        0.0, ge=0, description="Added per 1,000 input tokens the provider reports (US dollars)."
    )
    usd_per_1k_output_tokens: float = Field(
        0.0, ge=0, description="Added per 1,000 output tokens the provider reports (US dollars)."
    )
    ask_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of analysed frames a camera with no answers yet may ask about (the judge, or the "
        "user in the console and on MQTT without one): the frames its learner is least sure of. Halves by "
        "ask_half_support labels.",
    )
    ask_half_support: int = Field(
        60, ge=1, description="Labelled frames of a camera at which its ask_share has halved."
    )
    ask_per_hour: int = Field(
        30, ge=0, description="Most questions one camera asks in any rolling hour (0: never ask to learn)."
    )


class BreakerConfig(StrictModel):
    """Circuit breaker: after repeated failures the appliance decides alone for a while."""

    failures: int = Field(3, ge=1, le=100, description="Failed calls in a row that open the breaker.")
    cooloff_s: float = Field(
        300.0, ge=0, le=86400, description="Seconds of local-only decisions before one trial call."
    )


class PrivacyConfig(StrictModel):
    """What the uploaded picture shows: crop to the print area, then downscale. Nothing else is sent."""

    print_area: PrintArea | None = Field(
        None, description="Crop every camera's frame to [x0, y0, x1, y1] (fractions of width/height)."
    )
    camera_print_areas: dict[str, PrintArea] = Field(
        default_factory=dict, description="Per-camera crop by camera name; wins over print_area."
    )
    max_side_px: int = Field(
        768, ge=64, le=4096, description="Longest side of the uploaded picture (pixels)."
    )
    jpeg_quality: int = Field(85, ge=30, le=100, description="JPEG quality of the uploaded picture (30-100).")

    @field_validator("print_area")
    @classmethod
    def _area(cls, value: PrintArea | None) -> PrintArea | None:
        return _check_area(value)

    @field_validator("camera_print_areas")
    @classmethod
    def _areas(cls, value: dict[str, PrintArea]) -> dict[str, PrintArea]:
        for area in value.values():
            _check_area(area)
        return value


class CloudConfig(StrictModel):
    """The cloud judge: asked about uncertain frames (``mode = "always"``: every frame), within budget."""

    type: JudgeType = Field(
        "off",
        description="Judge plugin: off (default, nothing leaves the device), bedrock, openai_compatible.",
    )
    mode: Literal["uncertain", "always"] = Field(
        "uncertain",
        description="Which frames the judge is asked about: uncertain (default: only frames the model "
        "is unsure of, plus burst frames it cannot confirm) or always (every analysed frame, as the "
        "RTSP+Bedrock detector did; service.analysis_interval_s then defaults to 10 s). The budget "
        "applies either way.",
    )
    timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Longest the analysis loop waits for a verdict (seconds); later: dropped.",
    )
    request_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Connect/read timeout of one HTTP attempt (seconds)."
    )
    min_confidence: float = Field(
        0.6, ge=0, le=1, description="Verdicts less confident than this (0-1) count as no verdict."
    )
    bedrock: BedrockConfig = Field(default_factory=BedrockConfig)
    openai_compatible: OpenAICompatibleConfig = Field(default_factory=OpenAICompatibleConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @model_validator(mode="after")
    def _selected_plugin_is_complete(self) -> CloudConfig:
        if self.type == "bedrock" and not self.bedrock.model_id:
            raise ValueError("type bedrock needs cloud.bedrock.model_id (or env INFERENCE_PROFILE_ARN)")
        if self.type == "openai_compatible" and not self.openai_compatible.base_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError("cloud.openai_compatible.base_url must be an http(s) URL")
        return self
