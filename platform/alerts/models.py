"""Alerts (repeats of one problem merged by dedup key) and incidents (alerts grouped by rule)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, TenantOwnedMixin
from andon.platform.db.types import UTCDateTime


class Incident(TenantOwnedMixin, Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_tenant_status", "tenant_id", "status"),
        Index("ix_incidents_tenant_group", "tenant_id", "group_key"),
    )

    title: Mapped[str] = mapped_column(String(300), nullable=False)
    # "alert": grouped alerts of one asset (or one parent); "flood": a site's alarm rate over its limit.
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="alert")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="open")
    severity: Mapped[str] = mapped_column(String(10), nullable=False, default="medium")
    priority: Mapped[str] = mapped_column(String(2), nullable=False, default="P3")
    site_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # The site key floods are counted under: the site's id, else what the sender called it.
    site_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The sender's explicit parent (the ``incidentkey`` extension) that alerts of this incident share.
    group_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    alert_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    event_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    notifications: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    merged_into: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Alert(TenantOwnedMixin, Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_tenant_dedup_status", "tenant_id", "dedup_key", "status"),
        Index("ix_alerts_tenant_status", "tenant_id", "status"),
    )

    dedup_key: Mapped[str] = mapped_column(String(255), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    source: Mapped[str] = mapped_column(String(500), nullable=False)
    # triggered -> acknowledged -> resolved, as incident tools do; a repeat after resolve opens anew.
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="triggered")
    severity: Mapped[str] = mapped_column(String(10), nullable=False, default="medium")
    site_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    incident_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    first_event_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_event_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_event_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    # Chattering: occurrences in the current window; past the limit the alert is marked and stays
    # quiet (counted, never re-notified).
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    window_count: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    chattering: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # How many times people were told about it (once when it triggers): what a flood must not inflate.
    notifications: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    shelved_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    shelved_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class IncidentEntry(TenantOwnedMixin, Base):
    """One line of an incident's timeline."""

    __tablename__ = "incident_entries"

    incident_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    alert_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)


class AlarmRate(TenantOwnedMixin, Base):
    """Alarm events per site per minute: one row a minute, so flood detection costs one upsert."""

    __tablename__ = "alarm_rates"
    __table_args__ = (UniqueConstraint("tenant_id", "site_key", "minute"),)

    site_key: Mapped[str] = mapped_column(String(255), nullable=False)
    minute: Mapped[int] = mapped_column(Integer, nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
