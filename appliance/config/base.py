"""The base of every configuration model: unknown keys are errors, values are validated on assignment."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A config table that rejects keys it does not know."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
