"""Subscription changes delivered to Stripe after they commit, retried until Stripe has them.

A subscription start, change or cancellation writes a row to ``billing_sync_queue`` in its own
transaction (``SubscriptionService`` via ``SyncQueueRepository.enqueue``), never calling Stripe over
the network while the request holds its transaction. ``deliver_pending`` (the housekeeping job, when
Stripe is configured) sends each due tenant's newest state with ``StripeSync.ensure_customer`` and
``ensure_subscription`` (or ends the Stripe subscription), and deletes the row in the transaction
that stores the Stripe ids. A failed call leaves the row with its error and a later attempt time; the
next delivery sends the state as it is then, and the sync's fingerprints and idempotency keys make a
repeated delivery change nothing twice."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.stripe.client import StripeUnavailableError, connected, stripe_sdk
from andon.billing.stripe.repository import SyncQueueRepository, customer_links, due_syncs
from andon.billing.stripe.sync import BillingCustomer, BillingSubscription, StripeSync
from andon.platform.config.settings import StripeSettings
from andon.platform.db.scope import apply_principal_scope, bind_tenant
from andon.platform.db.types import utcnow
from andon.platform.http.errors import AndonError
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import system_principal

SYNC = system_principal(frozenset(), label="stripe subscription sync")
# After the n-th failure the next attempt waits 30 s times 2^(n-1), at most an hour.
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)


def subscription_key(tenant_id: uuid.UUID) -> str:
    """The Andon id of a customer's one Stripe subscription: a plan change swaps its items."""
    return f"subscription:{tenant_id}"


def retry_delay(attempts: int) -> timedelta:
    delay: timedelta = FIRST_RETRY * 2 ** max(0, attempts - 1)
    return min(LAST_RETRY, delay)


@dataclass
class Delivery:
    delivered: int = 0
    failed: dict[uuid.UUID, str] = field(default_factory=dict)


async def sync_subscription(sync: StripeSync, customer_name: str, now: datetime) -> str:
    """Brings the tenant's Stripe customer and subscription to its newest subscription segment:
    ``started`` or ``changed`` (its plan), ``ended`` (cancelled), or ``none``."""
    from andon.billing.plans.service import SubscriptionService

    subscriptions = SubscriptionService(sync.session, sync.tenant)
    history = (await subscriptions.read(now=now)).history
    if not history:
        return "none"
    await sync.ensure_customer(BillingCustomer(name=customer_name))
    newest = history[-1]
    key = subscription_key(sync.tenant.tenant_id)
    if newest.ends_at is not None:
        await sync.end_subscription(key, newest.ends_at)
        return "ended"
    [segment] = await subscriptions.segments(newest.starts_at, newest.starts_at + timedelta(seconds=1))
    await sync.ensure_subscription(
        BillingSubscription(andon_id=key, plan_id=str(segment.version.id), plan=segment.plan)
    )
    return "changed"


async def deliver_pending(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: StripeSettings,
    *,
    now: datetime | None = None,
    limit: int = 100,
) -> Delivery:
    """Sends every due pending subscription change to Stripe, each tenant in its own transaction."""
    from andon.tenants.orgs.service import CustomerService

    now = now or utcnow()
    report = Delivery()
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, SYNC)
        tenants = await due_syncs(session, now, limit)
        customers = CustomerService(session, SYNC)
        known = {t: await customers.get(t) for t in tenants}
        found = {t: (c.partner_id, c.name) for t, c in known.items()}
    if not tenants:
        return report
    failures = (stripe_sdk().StripeError, AndonError)
    async with connected(settings) as client:
        for tenant_id in tenants:
            partner_id, name = found[tenant_id]
            tenant = TenantContext(tenant_id=TenantId(tenant_id), partner_id=partner_id, principal=SYNC)
            try:
                async with sessionmaker() as session, session.begin():
                    await _bind(session, tenant)
                    queue = SyncQueueRepository(session, tenant)
                    row = await queue.claim()
                    if row is None:  # delivered meanwhile by another worker
                        continue
                    await sync_subscription(StripeSync(client, session, tenant), name, now)
                    await queue.done(row)
            except StripeUnavailableError:
                raise
            except failures as exc:
                message = str(getattr(exc, "user_message", None) or exc)[:500]
                report.failed[tenant_id] = message
                await _failed(sessionmaker, tenant, message, now)
            else:
                report.delivered += 1
    return report


async def _bind(session: AsyncSession, tenant: TenantContext) -> None:
    await apply_principal_scope(session, SYNC)
    await bind_tenant(session, tenant.tenant_id, SYNC)


async def _failed(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: TenantContext, message: str, now: datetime
) -> None:
    """Keeps the change pending with its error, for a later attempt."""
    async with sessionmaker() as session, session.begin():
        await _bind(session, tenant)
        row = await SyncQueueRepository(session, tenant).claim()
        if row is not None:
            row.attempts += 1
            row.last_error = message
            row.next_attempt_at = now + retry_delay(row.attempts)
            await session.flush()


async def each_linked_customer(
    sessionmaker: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession, TenantContext], Awaitable[None]]
) -> None:
    """``work`` in each customer linked to Stripe, one transaction each, bound to that customer."""
    from andon.tenants.orgs.service import CustomerService

    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, SYNC)
        tenants = [tenant for tenant, _ in await customer_links(session)]
        customers = CustomerService(session, SYNC)
        partners: dict[uuid.UUID, uuid.UUID] = {t: (await customers.get(t)).partner_id for t in tenants}
    for tenant_id in tenants:
        tenant = TenantContext(tenant_id=TenantId(tenant_id), partner_id=partners[tenant_id], principal=SYNC)
        async with sessionmaker() as session, session.begin():
            await _bind(session, tenant)
            await work(session, tenant)


async def push_all_usage(sessionmaker: async_sessionmaker[AsyncSession], settings: StripeSettings) -> int:
    """The usage recorded since the last push of every linked customer, as meter events; how many
    records were sent (the housekeeping job; ``andon billing push-usage`` does the same by hand)."""
    sent = 0
    async with connected(settings) as client:

        async def one(session: AsyncSession, tenant: TenantContext) -> None:
            nonlocal sent
            sync = StripeSync(client, session, tenant)
            await sync.ensure_meters()
            sent += (await sync.push_usage()).sent

        await each_linked_customer(sessionmaker, one)
    return sent
