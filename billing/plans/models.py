"""Price books, plan versions and subscriptions.

A price book belongs to the operator (``partner_id`` empty: wholesale prices to partners) or to one
partner (its retail prices to its customers), in one currency. A plan is stored as the validated
``Plan`` document of ``billing/pricing``; changing it adds a version, and subscriptions point at the
version they bought, so an invoice can always be recomputed from what was agreed.

Subscriptions are segments: a plan change ends the current row and starts a new one at the same
moment, a cancellation ends the last one. Customers subscribe to a plan of their partner's retail
book (``subscriptions``, tenant-owned); a partner subscribes to one plan of the operator's wholesale
book (``partner_subscriptions``), which is rated per customer, so the partner's cost is known per
customer.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, RecordMixin, TenantOwnedMixin
from andon.platform.db.types import JSONType, UTCDateTime

OPERATOR_BOOK = "operator"
PARTNER_BOOK = "partner"


class PriceBook(RecordMixin, Base):
    __tablename__ = "price_books"
    __table_args__ = (UniqueConstraint("owner_key", "key"),)

    # None: the operator's (wholesale) book.
    partner_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("partners.id", ondelete="CASCADE"), nullable=True, index=True
    )
    # "operator" or the partner's id as text: one unique key per owner, which a NULL could not give.
    owner_key: Mapped[str] = mapped_column(String(40), nullable=False)
    key: Mapped[str] = mapped_column(String(63), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)


class PlanVersion(RecordMixin, Base):
    """One version of a plan; never changed once written."""

    __tablename__ = "plan_versions"
    __table_args__ = (UniqueConstraint("price_book_id", "key", "version"),)

    price_book_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("price_books.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # The book's owner, copied so row-level security needs no join.
    partner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    key: Mapped[str] = mapped_column(String(63), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # The msgspec ``Plan`` as JSON, validated before it was stored.
    document: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class SegmentMixin:
    plan_version_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("plan_versions.id", ondelete="RESTRICT"), nullable=False
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # None: runs until changed or cancelled.
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Fees are waived until then (the trial of the plan the subscription started with).
    trial_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Subscription(SegmentMixin, TenantOwnedMixin, Base):
    """A customer's retail plan over a stretch of time."""

    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_tenant_starts", "tenant_id", "starts_at"),)

    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)


class PartnerSubscription(SegmentMixin, RecordMixin, Base):
    """A partner's wholesale plan over a stretch of time (rated for each of its customers)."""

    __tablename__ = "partner_subscriptions"
    __table_args__ = (Index("ix_partner_subscriptions_partner_starts", "partner_id", "starts_at"),)

    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("partners.id", ondelete="CASCADE"), nullable=False)
