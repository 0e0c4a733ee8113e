"""Rollouts as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Wave = Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=1000)]


class RolloutCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # A template of the partner's library, and the published version to roll out.
    template: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$")]
    version: Annotated[str, msgspec.Meta(pattern=r"^\d{1,6}\.\d{1,6}\.\d{1,6}$")]
    # Customers in order of waves: the first wave is the canary.
    waves: Annotated[list[Wave], msgspec.Meta(min_length=1, max_length=20)]


class CustomerOutcome(msgspec.Struct, kw_only=True):
    customer_id: str
    wave: int
    # "upgraded", "unchanged" (already at the version), "not_deployed", "failed", "rolled_back"
    status: str
    from_version: str | None = None
    detail: str | None = None


class RolloutRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    template_key: str
    version: str
    waves: list[list[str]]
    next_wave: int
    status: str
    customers: list[CustomerOutcome]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
