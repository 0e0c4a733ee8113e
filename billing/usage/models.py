"""Usage records: append-only, one per metered fact, each with the idempotency key its emitter chose,
so a retried emit counts once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, TenantOwnedMixin
from andon.platform.db.types import JSONType, UTCDateTime, utcnow


class UsageRecord(TenantOwnedMixin, Base):
    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_usage_records_tenant_period_meter", "tenant_id", "period", "meter"),
        Index("ix_usage_records_partner_period", "partner_id", "period"),
    )

    # The customer's partner, so a partner's statement sums its customers without a join.
    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    meter: Mapped[str] = mapped_column(String(64), nullable=False)
    quantity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # The billing period it counts in (YYYY-MM): its own, or the one it arrived in when late.
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    late: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)
    # {"site": "...", "template": "..."}: what usage can be broken down by.
    dimensions: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)


class UsageMark(Base):
    """How far the usage collector has read one source, across tenants: the (time, id) of the last
    row it metered. Rows are read in that order, so the next pass starts just after it."""

    __tablename__ = "usage_marks"

    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
