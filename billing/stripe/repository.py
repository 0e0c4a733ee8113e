"""All SQL of the Stripe sync: a tenant's links, watermarks and invoices (tenant-scoped), the shared
catalogue and the processed webhook events (no tenant's data), and usage records in push order."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.stripe.models import (
    BillingSyncPending,
    StripeCatalogEntry,
    StripeInvoice,
    StripeLink,
    StripeWatermark,
    StripeWebhookEvent,
)
from andon.billing.usage.models import UsageRecord
from andon.billing.usage.repository import UsageRepository
from andon.platform.db.ids import new_id
from andon.platform.db.repository import TenantRepository
from andon.platform.db.scope import is_postgres
from andon.platform.db.types import utcnow


class StripeLinkRepository(TenantRepository[StripeLink]):
    model = StripeLink

    async def get_link(self, kind: str, andon_id: str) -> StripeLink | None:
        return await self.find(StripeLink.kind == kind, StripeLink.andon_id == andon_id)

    async def put(self, kind: str, andon_id: str, stripe_id: str, fingerprint: str) -> None:
        link = await self.get_link(kind, andon_id)
        if link is None:
            await self.add(StripeLink(kind=kind, andon_id=andon_id, stripe_id=stripe_id, fingerprint=fingerprint))
            return
        link.stripe_id, link.fingerprint = stripe_id, fingerprint
        await self.session.flush()


async def customer_links(session: AsyncSession) -> list[tuple[uuid.UUID, str]]:
    """Every tenant's Stripe customer, for the operator's reconciliation across tenants (the policies
    show them only in operator scope)."""
    stmt = select(StripeLink.tenant_id, StripeLink.stripe_id).where(StripeLink.kind == "customer")
    return [(t, s) for t, s in (await session.execute(stmt.order_by(StripeLink.tenant_id))).all()]


class StripeCatalog:
    """The shared meters, products and prices (outside any tenant: every tenant bills against them)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, kind: str, andon_id: str) -> StripeCatalogEntry | None:
        stmt = select(StripeCatalogEntry).where(
            StripeCatalogEntry.kind == kind, StripeCatalogEntry.andon_id == andon_id
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def of_kind(self, kind: str) -> Sequence[StripeCatalogEntry]:
        stmt = select(StripeCatalogEntry).where(StripeCatalogEntry.kind == kind).order_by(StripeCatalogEntry.andon_id)
        return (await self.session.execute(stmt)).scalars().all()

    async def put(self, kind: str, andon_id: str, stripe_id: str, fingerprint: str) -> None:
        entry = await self.get(kind, andon_id)
        if entry is None:
            self.session.add(
                StripeCatalogEntry(kind=kind, andon_id=andon_id, stripe_id=stripe_id, fingerprint=fingerprint)
            )
        else:
            entry.stripe_id, entry.fingerprint = stripe_id, fingerprint
        await self.session.flush()


class StripeWatermarkRepository(TenantRepository[StripeWatermark]):
    model = StripeWatermark

    async def position(self, stream: str) -> StripeWatermark | None:
        return await self.find(StripeWatermark.stream == stream)

    async def advance(self, stream: str, position: datetime, pushed: int) -> None:
        mark = await self.position(stream)
        if mark is None:
            await self.add(StripeWatermark(stream=stream, position=position, pushed=pushed))
            return
        mark.position = max(mark.position, position)
        mark.pushed += pushed
        await self.session.flush()


class PushableUsage(UsageRepository):
    async def since(
        self, after: tuple[datetime, uuid.UUID] | None, *, limit: int, not_before: datetime | None = None
    ) -> Sequence[UsageRecord]:
        """The tenant's records in push order (recorded_at, id), after a position."""
        stmt = self.select().order_by(UsageRecord.recorded_at, UsageRecord.id).limit(limit)
        if not_before is not None:
            stmt = stmt.where(UsageRecord.recorded_at >= not_before)
        if after is not None:
            stmt = stmt.where(tuple_(UsageRecord.recorded_at, UsageRecord.id) > tuple_(*after))
        return (await self.session.execute(stmt)).scalars().all()


class StripeInvoiceRepository(TenantRepository[StripeInvoice]):
    model = StripeInvoice

    async def by_stripe_id(self, stripe_id: str) -> StripeInvoice | None:
        return await self.find(StripeInvoice.stripe_id == stripe_id)

    async def in_period(self, period: str) -> Sequence[StripeInvoice]:
        stmt = self.select().where(StripeInvoice.period == period).order_by(StripeInvoice.stripe_id)
        return (await self.session.execute(stmt)).scalars().all()


async def claim_event(session: AsyncSession, event_id: str, type_: str, outcome: str) -> bool:
    """Records a webhook event as processed; False when it already was (a replay changes nothing).
    Inside the transaction of its effects: both commit, or neither."""
    insert = pg_insert if is_postgres(session) else sqlite_insert
    now = utcnow()
    stmt = (
        insert(StripeWebhookEvent)
        .values(id=new_id(), event_id=event_id, type=type_, outcome=outcome[:300], created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(StripeWebhookEvent.id)
    )
    return (await session.execute(stmt)).first() is not None


async def record_outcome(session: AsyncSession, event_id: str, outcome: str) -> None:
    await session.execute(
        update(StripeWebhookEvent).where(StripeWebhookEvent.event_id == event_id).values(outcome=outcome[:300])
    )


async def tenant_of_customer(session: AsyncSession, stripe_customer_id: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The tenant (and its partner) a Stripe customer stands for, or None when it is not Andon's.
    Read in operator scope: a signed Stripe event names a Stripe customer, not a tenant."""
    from andon.tenants.orgs.models import Customer

    stmt = (
        select(StripeLink.tenant_id, Customer.partner_id)
        .join(Customer, Customer.id == StripeLink.tenant_id)
        .where(StripeLink.kind == "customer", StripeLink.stripe_id == stripe_customer_id)
    )
    found = (await session.execute(stmt)).first()
    return None if found is None else (found[0], found[1])


class SyncQueueRepository(TenantRepository[BillingSyncPending]):
    """The tenant's pending Stripe sync: at most one row, whatever changed since the last delivery."""

    model = BillingSyncPending

    async def enqueue(self, reason: str, now: datetime) -> None:
        """Marks the tenant's subscription as still to be sent (in the change's own transaction)."""
        insert = pg_insert if is_postgres(self.session) else sqlite_insert
        stmt = insert(BillingSyncPending).values(
            id=new_id(),
            tenant_id=self.ctx.tenant_id,
            reason=reason,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        # Another change before the last was delivered: one delivery of the newest state covers both.
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id"],
            set_={"reason": reason, "next_attempt_at": now, "updated_at": now},
        )
        await self.session.execute(stmt)

    async def claim(self) -> BillingSyncPending | None:
        """The tenant's pending row, locked for this delivery (a concurrent one skips it)."""
        stmt = self.select().with_for_update(skip_locked=True)
        return (await self.session.execute(stmt)).scalars().first()

    async def done(self, row: BillingSyncPending) -> None:
        await self.session.delete(row)
        await self.session.flush()


async def due_syncs(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """Tenants whose pending Stripe sync is due, oldest first (operator scope, across tenants)."""
    stmt = (
        select(BillingSyncPending.tenant_id)
        .where(BillingSyncPending.next_attempt_at <= now)
        .order_by(BillingSyncPending.next_attempt_at, BillingSyncPending.tenant_id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())
