"""The demo's billing: the operator's wholesale book and plan with every demo partner on it, each
partner's retail book with two plans, every demo customer subscribed since the start of the previous
period, and a month and a bit of usage, so the finance pages have numbers and charts on first start.

Safe to run on every start: books and plans are created once (an unchanged plan stores no new
version), a subscription only where there is none, and usage through ``UsageService.record`` with
idempotency keys per customer, meter, site and day (seeding again adds only the days since)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.invoices.service import period_bounds
from andon.billing.plans.schemas import PriceBookCreate, SubscriptionChange
from andon.billing.plans.service import PriceBookService, SubscriptionService, WholesaleSubscriptionService
from andon.billing.pricing.prices import Plan
from andon.billing.usage.meters import period_of
from andon.billing.usage.service import Usage, UsageService
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope, unbind_tenant
from andon.platform.db.types import utcnow
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind, system_principal
from andon.tenants.orgs.models import Customer, Partner
from andon.tenants.orgs.service import CustomerService
from andon.tenants.plant.service import PlantService

WHOLESALE_BOOK = PriceBookCreate(key="wholesale", name="Andon wholesale", currency="EUR")
RETAIL_BOOK = PriceBookCreate(key="standard", name="Standard", currency="EUR")
DEMO_WORKFLOW_KEY = "machine-alarm-response"


def _plan(raw: dict[str, Any]) -> Plan:
    return msgspec.convert(raw, Plan)


WHOLESALE_PLAN = _plan(
    {
        "key": "partner-standard",
        "name": "Partner standard",
        "currency": "EUR",
        "items": [
            {"meter": "", "title": "Platform fee per customer", "price": {"type": "flat", "amount": 15000}},
            {"meter": "events.ingested", "title": "Events", "price": {"type": "per_unit", "unit_price": "0.0008"}},
            {"meter": "runs.started", "title": "Workflow runs", "price": {"type": "per_unit", "unit_price": "0.01"}},
        ],
    }
)
RETAIL_PLANS = (
    _plan(
        {
            "key": "professional",
            "name": "Professional",
            "currency": "EUR",
            "minimum": 60000,
            "items": [
                {"meter": "", "title": "Platform fee", "price": {"type": "flat", "amount": 49000}},
                {
                    "meter": "events.ingested",
                    "title": "Events",
                    "price": {
                        "type": "graduated",
                        "included": 10000,
                        "tiers": [{"up_to": 50000, "unit_price": "0.002"}, {"up_to": None, "unit_price": "0.001"}],
                    },
                },
                {
                    "meter": "runs.started",
                    "title": "Workflow runs",
                    "price": {"type": "per_unit", "unit_price": "0.05", "included": 500},
                },
                {
                    "meter": "seats",
                    "title": "Seats",
                    "price": {
                        "type": "volume",
                        "tiers": [{"up_to": 10, "unit_price": "0"}, {"up_to": None, "unit_price": "9.00"}],
                    },
                },
            ],
        }
    ),
    _plan(
        {
            "key": "starter",
            "name": "Starter",
            "currency": "EUR",
            "trial_days": 14,
            "items": [
                {"meter": "", "title": "Platform fee", "price": {"type": "flat", "amount": 19000}},
                {
                    "meter": "events.ingested",
                    "title": "Events",
                    "price": {"type": "per_unit", "unit_price": "0.004", "included": 5000},
                },
            ],
        }
    ),
)
# (meter, low, high) per site and day; gauges per customer and day.
PER_SITE = (("events.ingested", 250, 900), ("runs.started", 8, 40), ("steps.executed", 30, 160))
PER_CUSTOMER = (("connector.calls", 20, 90), ("notifications.sent", 5, 30))


def partner_seed_principal(partner: Partner) -> Principal:
    """The partner's own work in the seed (its books and its customers' plans are its business)."""
    return Principal(
        subject_kind=SubjectKind.SYSTEM,
        subject_id=None,
        label="demo seed",
        org_kind=OrgKind.PARTNER,
        partner_id=partner.id,
        permissions=ALL_PERMISSIONS,
    )


def demo_usage(slug: str, sites: list[str], days: list[datetime], seats: int) -> list[Usage]:
    """A plant's usage on these days, the same numbers on every run (seeded by customer and day)."""
    found: list[Usage] = []
    for moment in days:
        day = f"{moment:%Y-%m-%d}"
        dice = random.Random(f"{slug}:{day}")  # noqa: S311 - demo numbers, not secrets
        weekend = moment.weekday() >= 5
        for site in sites:
            dims = {"site": site, "template": DEMO_WORKFLOW_KEY}
            for meter, low, high in PER_SITE:
                quantity = dice.randint(low, high) // (3 if weekend else 1)
                found.append(Usage(meter, quantity, f"demo:{meter}:{site}:{day}", moment, dims))
            found.append(Usage("sites.active", 1, f"demo:sites.active:{site}:{day}", moment, {"site": site}))
        for meter, low, high in PER_CUSTOMER:
            found.append(Usage(meter, dice.randint(low, high), f"demo:{meter}:{day}", moment, {}))
        found.append(Usage("seats", seats + dice.randint(0, 3), f"demo:seats:{day}", moment, {}))
        found.append(Usage("assets.active", 12 + len(sites) * 4, f"demo:assets.active:{day}", moment, {}))
    return found


def _days(start: datetime, until: datetime) -> list[datetime]:
    """Noon of each day from ``start`` up to ``until`` (today's only once noon has passed)."""
    found, moment = [], start + timedelta(hours=12)
    while moment <= until:
        found.append(moment)
        moment += timedelta(days=1)
    return found


async def _wholesale(session: AsyncSession, partners: dict[str, Partner], since: datetime) -> None:
    operator = system_principal(ALL_PERMISSIONS, "demo seed")
    await apply_principal_scope(session, operator)
    books = PriceBookService(session, operator)
    book = next((b for b in await books.list_books(None) if b.key == WHOLESALE_BOOK.key), None)
    if book is None:
        book = await books.create(None, WHOLESALE_BOOK)
    await books.put_plan(None, book.id, WHOLESALE_PLAN)
    subscriptions = WholesaleSubscriptionService(session, operator)
    for partner in partners.values():
        if not (await subscriptions.read(partner.id)).history:
            change = SubscriptionChange(price_book_id=book.id, plan=WHOLESALE_PLAN.key, at=since)
            await subscriptions.change(partner.id, change)


async def _retail(
    session: AsyncSession, partner: Partner, customers: list[Customer], since: datetime, now: datetime
) -> int:
    principal = partner_seed_principal(partner)
    await apply_principal_scope(session, principal)
    books = PriceBookService(session, principal)
    book = next((b for b in await books.list_books(partner.id) if b.key == RETAIL_BOOK.key), None)
    if book is None:
        book = await books.create(partner.id, RETAIL_BOOK)
    for plan in RETAIL_PLANS:
        await books.put_plan(partner.id, book.id, plan)
    _, previous_end = period_bounds(period_of(since))
    added = 0
    for customer in customers:
        tenant = await CustomerService(session, principal).open_tenant(customer.id)
        subscription = SubscriptionService(session, tenant)
        if not (await subscription.read()).history:
            await subscription.change(SubscriptionChange(price_book_id=book.id, plan="professional", at=since))
        sites, _ = await PlantService(session, tenant).list("site", limit=10, offset=0)
        site_ids = [str(s.id) for s in sites]
        usage = UsageService(session, tenant)
        # Last month's usage as if recorded on its last day (it lands in its own period, not late).
        added += await usage.record(
            demo_usage(customer.slug, site_ids, _days(since, previous_end), 8), now=previous_end
        )
        added += await usage.record(demo_usage(customer.slug, site_ids, _days(previous_end, now), 8), now=now)
        await unbind_tenant(session)
    return added


async def seed_billing(
    sessionmaker: async_sessionmaker[AsyncSession],
    partners: dict[str, Partner],
    customers: dict[str, list[Customer]],
    *,
    now: datetime | None = None,
) -> int:
    """Seeds (or tops up) the demo's billing; how many usage records were new. ``customers``: each
    partner slug's demo customers."""
    now = now or utcnow()
    this_start, _ = period_bounds(period_of(now))
    since, _ = period_bounds(period_of(this_start - timedelta(days=1)))
    async with sessionmaker() as session, session.begin():
        await _wholesale(session, partners, since)
    added = 0
    for slug, partner in partners.items():
        async with sessionmaker() as session, session.begin():
            added += await _retail(session, partner, customers.get(slug, []), since, now)
    return added
