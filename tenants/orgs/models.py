"""Partners (MSPs) and their customers; a customer organisation is the tenant."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, RecordMixin
from andon.platform.db.types import UTCDateTime


class Partner(RecordMixin, Base):
    __tablename__ = "partners"

    slug: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")


class Customer(RecordMixin, Base):
    __tablename__ = "customers"

    partner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("partners.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    slug: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    default_timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    # Delegation: whether the partner may act inside this customer, and until when (None: no end).
    # Only the customer changes it; onboarding starts with it on.
    partner_access: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    partner_access_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def partner_may_act(self, now: datetime) -> bool:
        return self.partner_access and (self.partner_access_until is None or self.partner_access_until > now)
