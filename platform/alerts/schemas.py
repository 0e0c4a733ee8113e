"""API shapes of alerts and incidents."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec


class AlertRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    dedup_key: str
    title: str
    type: str
    source: str
    status: str
    severity: str
    site_id: uuid.UUID | None
    asset_id: uuid.UUID | None
    incident_id: uuid.UUID | None
    count: int
    first_event_at: datetime
    last_event_at: datetime
    chattering: bool
    notifications: int
    shelved_until: datetime | None
    shelved_reason: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


class IncidentRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    title: str
    kind: str
    status: str
    severity: str
    priority: str
    site_id: uuid.UUID | None
    asset_id: uuid.UUID | None
    # The sender's explicit parent (the incidentkey extension), when alerts were grouped by it.
    group_key: str | None
    alert_count: int
    event_count: int
    notifications: int
    merged_into: uuid.UUID | None
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None


class TimelineEntry(msgspec.Struct, kw_only=True):
    at: datetime
    kind: str
    text: str
    alert_id: uuid.UUID | None
    actor: str | None


class IncidentDetail(msgspec.Struct, kw_only=True):
    incident: IncidentRead
    alerts: list[AlertRead]
    timeline: list[TimelineEntry]


class Shelve(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    minutes: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60, description="how long, at most a week")]
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]
