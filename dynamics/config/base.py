"""The base of every config section: unknown keys are errors, values are frozen once validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section (pydantic, frozen, `extra="forbid"`); each field documents itself in `description`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)
