"""What Andon remembers of Stripe: which Stripe object stands for which Andon one (so a sync never
creates twice), how far usage was pushed, which webhook events were processed, and the invoices
Stripe reported."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, RecordMixin, TenantOwnedMixin
from andon.platform.db.types import UTCDateTime


class StripeLink(TenantOwnedMixin, Base):
    """A tenant's own Stripe object: its customer, its subscriptions."""

    __tablename__ = "stripe_links"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "andon_id"), UniqueConstraint("stripe_id"))

    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    andon_id: Mapped[str] = mapped_column(String(200), nullable=False)
    stripe_id: Mapped[str] = mapped_column(String(255), nullable=False)
    # A hash of what was sent: a change is pushed, an unchanged object is not touched.
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)


class StripeCatalogEntry(RecordMixin, Base):
    """A Stripe object every tenant shares: a meter (one per Andon meter), a plan's product, a price.
    It holds no tenant's data, only Stripe ids of the catalogue."""

    __tablename__ = "stripe_catalog"
    __table_args__ = (UniqueConstraint("kind", "andon_id"),)

    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    andon_id: Mapped[str] = mapped_column(String(200), nullable=False)
    stripe_id: Mapped[str] = mapped_column(String(255), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)


class StripeWatermark(TenantOwnedMixin, Base):
    """How far a tenant's usage records were pushed as meter events (by recorded_at)."""

    __tablename__ = "stripe_watermarks"
    __table_args__ = (UniqueConstraint("tenant_id", "stream"),)

    stream: Mapped[str] = mapped_column(String(40), nullable=False)
    position: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    pushed: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class StripeWebhookEvent(RecordMixin, Base):
    """A Stripe event id processed once: a replayed delivery finds it here and changes nothing."""

    __tablename__ = "stripe_webhook_events"
    __table_args__ = (UniqueConstraint("event_id"),)

    event_id: Mapped[str] = mapped_column(String(255), nullable=False)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    outcome: Mapped[str] = mapped_column(String(300), nullable=False)


class StripeInvoice(TenantOwnedMixin, Base):
    """An invoice as Stripe's webhooks last described it."""

    __tablename__ = "stripe_invoices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "stripe_id"),
        Index("ix_stripe_invoices_tenant_period", "tenant_id", "period"),
    )

    stripe_id: Mapped[str] = mapped_column(String(255), nullable=False)
    stripe_customer_id: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(30), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount_due: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount_paid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The billing period (YYYY-MM) the invoice's usage period starts in.
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    # The Stripe event last applied: an older event delivered late does not undo a newer one.
    event_created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_event_type: Mapped[str] = mapped_column(String(100), nullable=False)


class BillingSyncPending(TenantOwnedMixin, Base):
    """A customer whose subscription changed and whose Stripe objects are still to be brought up to
    date. Written in the change's own transaction (the change is never lost), deleted once Stripe has
    it; a failed call leaves it, with the error, for the next try."""

    __tablename__ = "billing_sync_queue"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    # What changed last (subscription_started, subscription_changed, subscription_cancelled).
    reason: Mapped[str] = mapped_column(String(40), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
