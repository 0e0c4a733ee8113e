"""Stored events and the outbox that hands them to the workers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, TenantOwnedMixin
from andon.platform.db.ids import new_id
from andon.platform.db.types import JSONType, UTCDateTime, utcnow


class Event(TenantOwnedMixin, Base):
    """One accepted event, stored once per (tenant, source, id): a repeat delivery finds this row."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source", "event_id"),
        Index("ix_events_tenant_received", "tenant_id", "created_at"),
        Index("ix_events_tenant_type", "tenant_id", "type"),
        # The usage collector reads every tenant's new events in this order.
        Index("ix_events_created_id", "created_at", "id"),
    )

    source: Mapped[str] = mapped_column(String(500), nullable=False)
    event_id: Mapped[str] = mapped_column(String(255), nullable=False)
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    severity: Mapped[str | None] = mapped_column(String(10), nullable=True)
    dedup_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # What the sender named, and what it resolved to in the tenant's plant (None: not found yet).
    site_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)
    asset_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)
    site_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    line_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    data: Mapped[Any] = mapped_column(JSONType, nullable=True)
    extensions: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # The delivery as it arrived, kept for the retention period (mapping fixes, disputes).
    # None once the retention period has passed.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    channel: Mapped[str] = mapped_column(String(20), nullable=False)
    connection_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="accepted")
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OutboxMessage(Base):
    """A message to hand to the broker, written in the same transaction as what it announces; the
    relay sends it and deletes it, so a broker outage delays work and never loses it."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    args: Mapped[list[Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, default=new_id)
