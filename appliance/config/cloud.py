"""Configuration of the cloud fallback judges."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from appliance.config.base import StrictModel


class BedrockConfig(StrictModel):
    """AWS Bedrock cloud judge (used only for frames the local model is unsure of)."""

    enabled: bool = Field(False, description="Send uncertain frames to Bedrock (off by default: privacy).")
    region: str = Field("us-west-2", description="AWS region (env AWS_REGION).")
    role_arn: str | None = Field(None, description="Role to assume with sts:AssumeRole (env AWS_ROLE_ARN).")
    model_id: str | None = Field(
        None, description="Model id or inference profile ARN (env INFERENCE_PROFILE_ARN)."
    )
    profile: str = Field("default", description="Profile in the credentials file (env APP_AWS_PROFILE).")
    credentials_file: Path = Field(
        Path("/creds/credentials"), description="AWS credentials file (or credential aws_credentials)."
    )


class CloudConfig(StrictModel):
    """Cloud fallback judges."""

    bedrock: BedrockConfig = Field(default_factory=BedrockConfig)
