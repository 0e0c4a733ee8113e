"""API shapes of events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec


class AcceptedRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    source: str
    event_id: str
    duplicate: bool


class BatchAccepted(msgspec.Struct, kw_only=True):
    accepted: list[AcceptedRead]
    new: int
    duplicates: int


class EventRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    source: str
    event_id: str
    type: str
    subject: str | None
    time: datetime | None
    created_at: datetime
    severity: str | None
    dedup_key: str | None
    site_ref: str | None
    asset_ref: str | None
    site_id: uuid.UUID | None
    line_id: uuid.UUID | None
    asset_id: uuid.UUID | None
    data: Any
    extensions: dict[str, Any]
    channel: str
    status: str
    processed_at: datetime | None


class EventTypeRead(msgspec.Struct, kw_only=True):
    type: str
    title: str
    alarm: bool
    data_schema: dict[str, Any]
