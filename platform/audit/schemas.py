"""API shape of an audit entry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec


class AuditEntryRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    chain: str
    seq: int
    at: datetime
    actor: dict[str, Any]
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str
