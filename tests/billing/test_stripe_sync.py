"""The Stripe sync through the official SDK against the fake Stripe: each object is created once and
a re-run creates nothing, usage goes as meter events counted once by identifier, the webhook takes a
signed event once and refuses forged or stale ones, reconciliation lists every difference and none
when in sync, and no tenant sees another's Stripe data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.pricing.prices import FlatPrice, GraduatedPrice, PerUnitPrice, Plan, PlanItem, Tier, VolumePrice
from andon.billing.pricing.rating import rate
from andon.billing.stripe.cli import _push as _push_command
from andon.billing.stripe.cli import _reconcile
from andon.billing.stripe.client import connected
from andon.billing.stripe.models import StripeWebhookEvent
from andon.billing.stripe.reconcile import Reconciliation, reconcile_tenant
from andon.billing.stripe.repository import StripeInvoiceRepository, StripeLinkRepository
from andon.billing.stripe.sync import BillingCustomer, BillingSubscription, StripeSync, identifier
from andon.billing.stripe.webhooks import PATH
from andon.billing.usage.meters import period_end
from andon.billing.usage.service import Usage, UsageService
from andon.platform.config.settings import Settings, StripeSettings
from andon.platform.db.scope import bind_tenant
from andon.platform.engine.executor import ENGINE
from andon.platform.http.app import create_app
from andon.platform.http.errors import ValidationFailedError
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.conftest import ON_POSTGRES
from tests.support.browser import browser_on
from tests.support.contracts.server import serve
from tests.support.stripe_fake import API_KEY, StripeFake
from tests.tenants.factories import Org, World

pytestmark = [
    pytest.mark.anyio,
    # The SDK's httpx transport posts its form body as bytes, which httpx 0.28 calls deprecated.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]

PLAN = Plan(
    key="standard",
    name="Standard",
    currency="EUR",
    items=[
        PlanItem(meter="", title="Platform fee", price=FlatPrice(amount=4900)),
        PlanItem(meter="runs.started", title="Runs", price=PerUnitPrice(unit_price="0.05", included=10)),
        PlanItem(
            meter="events.ingested",
            title="Events",
            price=GraduatedPrice(
                tiers=[Tier(up_to=100, unit_price="0.01"), Tier(up_to=None, unit_price="0.005", flat_fee=100)]
            ),
        ),
        PlanItem(meter="seats", title="Seats", price=PerUnitPrice(unit_price="10")),
    ],
)

ACME = BillingCustomer(name="Acme", email="billing@acme.test")


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with serve(StripeFake()) as running:
        yield running


@pytest.fixture
def settings(settings: Settings, fake: StripeFake) -> Settings:
    stripe = StripeSettings(api_key=API_KEY, webhook_secret=fake.webhook_secret, api_base=fake.url)
    return settings.model_copy(update={"stripe": stripe})


def _tenant(org: Org) -> TenantContext:
    return TenantContext(tenant_id=TenantId(org.customer.customer_id), partner_id=org.partner_id, principal=ENGINE)


@asynccontextmanager
async def _in(
    sessionmaker: async_sessionmaker[AsyncSession], org: Org
) -> AsyncIterator[tuple[AsyncSession, TenantContext]]:
    tenant = _tenant(org)
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant.tenant_id, ENGINE)
        yield session, tenant


async def _sync(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], org: Org, name: str = "Acme", plan: Plan = PLAN
) -> StripeSync:
    async with connected(settings.stripe) as client, _in(sessionmaker, org) as (session, tenant):
        sync = StripeSync(client, session, tenant)
        await sync.ensure_customer(BillingCustomer(name=name, email=ACME.email))
        await sync.ensure_subscription(BillingSubscription(andon_id=f"sub-{org.slug}", plan_id="plan-v1", plan=plan))
        return sync


def _posts(fake: StripeFake) -> int:
    return sum(1 for r in fake.api_requests() if r.method == "POST")


async def test_sync_creates_each_object_once_and_a_rerun_creates_nothing(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], world: World, fake: StripeFake
) -> None:
    first = await _sync(settings, sessionmaker, world.a)
    assert dict(first.report.created) == {"customer": 1, "meter": 10, "product": 1, "price": 4, "subscription": 1}
    assert [len(fake.objects[k]) for k in ("customer", "billing.meter", "product", "price", "subscription")] == [
        1, 10, 1, 4, 1,
    ]  # fmt: skip
    customer = next(iter(fake.objects["customer"].values()))
    assert customer["metadata"] == {
        "andon_tenant_id": str(world.a.customer.customer_id),
        "andon_partner_id": str(world.a.partner_id),
    }
    runs = next(p for p in fake.objects["price"].values() if p["nickname"] == "Runs")
    # 0.05 EUR a run after 10 included: a free first tier, then 5 cents.
    assert runs["tiers_mode"] == "graduated"
    assert [(t["up_to"], t["unit_amount_decimal"]) for t in runs["tiers"]] == [(10, "0"), (None, "5")]
    sub = next(iter(fake.objects["subscription"].values()))
    assert sub["customer"] == customer["id"] and len(sub["items"]["data"]) == 4
    assert sub["metadata"]["andon_subscription_id"] == f"sub-{world.a.slug}"

    posts = _posts(fake)
    again = await _sync(settings, sessionmaker, world.a)
    assert not again.report.created and not again.report.updated
    assert _posts(fake) == posts

    # A new name updates the customer; a new unit price is a new price, the old one archived.
    dearer = msgspec.structs.replace(
        PLAN,
        items=[
            PLAN.items[0],
            PlanItem(meter="runs.started", title="Runs", price=PerUnitPrice(unit_price="0.06", included=10)),
            *PLAN.items[2:],
        ],
    )
    changed = await _sync(settings, sessionmaker, world.a, name="Acme GmbH", plan=dearer)
    assert dict(changed.report.updated) == {"customer": 1, "price": 1, "subscription": 1}
    assert customer["name"] == "Acme GmbH" and len(fake.objects["customer"]) == 1
    assert not runs["active"] and len(fake.objects["price"]) == 5
    assert {i["price"]["nickname"]: i["price"]["id"] for i in sub["items"]["data"]}["Runs"] != runs["id"]
    assert len(sub["items"]["data"]) == 4 and len(fake.objects["subscription"]) == 1

    # Another tenant: its own customer and subscription, the shared meters, product and prices.
    await _sync(settings, sessionmaker, world.b, name="Beta", plan=dearer)
    assert [len(fake.objects[k]) for k in ("customer", "billing.meter", "product", "price", "subscription")] == [
        2, 10, 1, 5, 2,
    ]  # fmt: skip
    for org, other in ((world.a, world.b), (world.b, world.a)):
        async with _in(sessionmaker, org) as (session, tenant):
            links = await StripeLinkRepository(session, tenant).list()
            assert {link.andon_id for link in links} == {str(org.customer.customer_id), f"sub-{org.slug}"}
            assert str(other.customer.customer_id) not in {link.andon_id for link in links}
            if ON_POSTGRES:
                # Row-level security too: a raw SELECT without a WHERE sees the bound tenant's links only.
                raw = (await session.execute(text("SELECT andon_id FROM stripe_links"))).scalars().all()
                assert set(raw) == {link.andon_id for link in links}


async def test_a_sync_that_died_before_storing_its_ids_gets_the_same_objects_back(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], world: World, fake: StripeFake
) -> None:
    async with connected(settings.stripe) as client, sessionmaker() as session:
        await session.begin()
        await bind_tenant(session, world.a.customer.customer_id, ENGINE)
        made = await StripeSync(client, session, _tenant(world.a)).ensure_customer(ACME)
        await session.rollback()  # the process died: Stripe has the customer, Andon has no link
    again = await _sync(settings, sessionmaker, world.a)
    async with _in(sessionmaker, world.a) as (session, tenant):
        link = await StripeLinkRepository(session, tenant).get_link("customer", str(tenant.tenant_id))
    assert link is not None and link.stripe_id == made
    assert len(fake.objects["customer"]) == 1 and again.report.created["customer"] == 1


async def _record(sessionmaker: async_sessionmaker[AsyncSession], org: Org, usage: list[Usage], now: datetime) -> None:
    async with _in(sessionmaker, org) as (session, tenant):
        await UsageService(session, tenant).record(usage, now=now)


async def _push(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], org: Org) -> Any:
    async with connected(settings.stripe) as client, _in(sessionmaker, org) as (session, tenant):
        return await StripeSync(client, session, tenant).push_usage()


async def _reconciled(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    org: Org,
    period: str,
    andon_invoice_total: int | None = None,
) -> Reconciliation:
    report = Reconciliation(period)
    async with connected(settings.stripe) as client, _in(sessionmaker, org) as (session, tenant):
        await reconcile_tenant(client, session, tenant, period, report, andon_invoice_total=andon_invoice_total)
    return report


async def _deliver(api: Any, fake: StripeFake, event: dict[str, Any], **signing: Any) -> Any:
    body, headers = fake.signed(event, **signing)
    return await api.post(PATH, content=body, headers=headers)


async def test_usage_goes_to_stripe_once_per_record_and_reconciles(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], world: World, fake: StripeFake, api: Any
) -> None:
    await _sync(settings, sessionmaker, world.a)
    await _sync(settings, sessionmaker, world.b, name="Beta")
    now = datetime.now(UTC).replace(microsecond=0)
    at = now - timedelta(hours=3)
    period = at.strftime("%Y-%m")
    early = [Usage("runs.started", 4, f"run-{n}", at) for n in range(5)] + [
        Usage("events.ingested", 150, "events-1", at),
        Usage("seats", 7, "seats-1", at),
        Usage("seats", 12, "seats-2", at),
    ]
    await _record(sessionmaker, world.a, early, now - timedelta(hours=2))
    await _record(sessionmaker, world.b, [Usage("runs.started", 1, "run-0", at)], now - timedelta(hours=2))
    pushed = await _push(settings, sessionmaker, world.a)
    assert (pushed.sent, pushed.duplicates, pushed.gauges) == (7, 0, 1)
    a_events = [e for e in fake.meter_events if e["identifier"].startswith(str(world.a.customer.customer_id))]
    assert identifier(world.a.customer.customer_id, "run-3") in {e["identifier"] for e in a_events}
    assert len(a_events) == 7  # 6 records one by one, seats as the period's maximum

    # Recorded later: only these go; what was pushed is not read again.
    await _record(sessionmaker, world.a, [Usage("runs.started", 2, "run-late", at)], now - timedelta(hours=1))
    assert (await _push(settings, sessionmaker, world.a)).sent == 1
    # A push whose transaction is lost keeps the watermark where it was: the rerun resends, and
    # Stripe, knowing each identifier, counts nothing twice.
    await _record(sessionmaker, world.a, [Usage("runs.started", 3, "run-more", at)], now - timedelta(minutes=30))
    async with connected(settings.stripe) as client, sessionmaker() as session:
        await session.begin()
        await bind_tenant(session, world.a.customer.customer_id, ENGINE)
        lost = await StripeSync(client, session, _tenant(world.a)).push_usage()
        await session.rollback()
    assert lost.sent == 1
    events = len(fake.meter_events)
    rerun = await _push(settings, sessionmaker, world.a)
    assert rerun.sent == 0 and rerun.duplicates == 2 and len(fake.meter_events) == events

    # Stripe's summaries match Andon's totals: nothing to report. Tenant B's usage is its own.
    in_sync = await _reconciled(settings, sessionmaker, world.a, period)
    assert in_sync.differences == [] and in_sync.checked == 10
    assert (await _push(settings, sessionmaker, world.b)).sent == 1
    assert (await _reconciled(settings, sessionmaker, world.b, period)).differences == []

    # A usage record Stripe never received, a Stripe invoice whose total moved after the webhook.
    await _record(sessionmaker, world.a, [Usage("runs.started", 5, "run-unsent", at)], now)
    sub = next(
        s
        for s in fake.objects["subscription"].values()
        if s["metadata"]["andon_subscription_id"] == "sub-" + world.a.slug
    )
    start = int(datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC).timestamp())
    invoice = fake.invoice(sub["id"], start, int(period_end(period).timestamp()))
    # 49.00 fee + (25 - 10 included runs) x 0.05 + 100 events x 0.01 + 50 x 0.005 + 1.00 tier fee + 12 seats x 10
    assert invoice["total"] == 4900 + 75 + 100 + 25 + 100 + 12000
    assert (await _deliver(api, fake, fake.event("invoice.finalized", invoice))).status_code == 200
    billed = invoice["total"]
    fake.objects["invoice"][invoice["id"]]["total"] += 500
    report = await _reconciled(settings, sessionmaker, world.a, period, andon_invoice_total=billed)
    found = {(d.kind, d.subject): (d.andon, d.stripe) for d in report.differences}
    assert found == {
        ("meter", "runs.started"): (30, 25),
        ("invoice", invoice["id"]): (billed, billed + 500),
        ("invoice_total", period): (billed, billed + 500),
    }
    assert (await _reconciled(settings, sessionmaker, world.b, period)).differences == []


async def test_a_webhook_is_processed_once_and_forged_or_stale_ones_are_refused(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], world: World, fake: StripeFake, api: Any
) -> None:
    await _sync(settings, sessionmaker, world.a)
    sub = next(iter(fake.objects["subscription"].values()))
    now = int(datetime.now(UTC).timestamp())
    invoice = fake.invoice(sub["id"], now - 86400, now, total=4900)
    finalized = fake.event("invoice.finalized", invoice, created=now - 10)
    body, headers = fake.signed(finalized)
    first = await api.post(PATH, content=body, headers=headers)
    assert first.status_code == 200 and first.json()["duplicate"] is False
    paid = fake.event("invoice.paid", {**invoice, "status": "paid", "amount_paid": 4900}, created=now - 5)
    assert (await _deliver(api, fake, paid)).status_code == 200

    # The first delivery again, as Stripe retries it: answered, not applied (it would undo "paid").
    replay = await api.post(PATH, content=body, headers=headers)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    # Another event, older than the one applied, arriving late: taken, and the newer state kept.
    late = fake.event("invoice.payment_failed", {**invoice, "status": "open"}, created=now - 8)
    kept = await _deliver(api, fake, late)
    assert kept.status_code == 200 and kept.json()["outcome"].startswith("kept invoice")

    # The same delivery twice at once: one applies it, the other finds it taken.
    twice = fake.event("invoice.paid", {**invoice, "status": "paid", "amount_paid": 4900}, created=now - 5)
    twice_body, twice_headers = fake.signed(twice)
    both = await asyncio.gather(*(api.post(PATH, content=twice_body, headers=twice_headers) for _ in range(2)))
    assert sorted(r.json()["duplicate"] for r in both) == [False, True]

    # A forged signature, a stale timestamp, no signature: refused with a reason, nothing stored.
    forged_event = fake.event("invoice.payment_failed", {**invoice, "status": "open"})
    forged = await _deliver(api, fake, forged_event, secret="whsec_not_the_endpoints")
    assert forged.status_code == 400 and "Stripe-Signature" in forged.json()["detail"]
    assert "signature" in forged.json()["detail"].lower()
    stale = await _deliver(api, fake, forged_event, at=now - 3600)
    assert stale.status_code == 400 and "tolerance" in stale.json()["detail"]
    unsigned = await api.post(PATH, content=b"{}", headers={"content-type": "application/json"})
    assert unsigned.status_code == 400 and "missing" in unsigned.json()["detail"]

    async with _in(sessionmaker, world.a) as (session, tenant):
        rows = await StripeInvoiceRepository(session, tenant).list()
        assert [(r.stripe_id, r.status, r.total, r.amount_paid) for r in rows] == [(invoice["id"], "paid", 4900, 4900)]
        events = (await session.execute(select(StripeWebhookEvent.event_id))).scalars().all()
        assert sorted(events) == sorted([finalized["id"], paid["id"], late["id"], twice["id"]])
    async with _in(sessionmaker, world.b) as (session, tenant):
        assert await StripeInvoiceRepository(session, tenant).list() == []

    # An invoice of a Stripe customer that is not Andon's is acknowledged and left alone.
    stranger = await _deliver(api, fake, fake.event("invoice.paid", {**invoice, "id": "in_x", "customer": "cus_x"}))
    assert stranger.status_code == 200 and "not one of Andon's" in stranger.json()["outcome"]


async def test_webhooks_and_reconciliation_say_so_when_stripe_is_not_configured(
    settings: Settings, fake: StripeFake, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = settings.model_copy(update={"stripe": StripeSettings()})
    app = create_app(bare)
    try:
        async with browser_on(app, "andon.test") as api:
            body, headers = fake.signed(fake.event("invoice.paid", {"id": "in_1", "object": "invoice"}))
            answer = await api.post(PATH, content=body, headers=headers)
    finally:
        await app.state.engine.dispose()
    assert answer.status_code == 503 and "ANDON_STRIPE_WEBHOOK_SECRET" in answer.json()["detail"]
    assert await _reconcile(bare, "2026-11") == 2
    assert "ANDON_STRIPE_API_KEY" in capsys.readouterr().err


async def test_the_reconcile_command_lists_each_difference_and_exits_1(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    world: World,
    fake: StripeFake,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _sync(settings, sessionmaker, world.a)
    await _sync(settings, sessionmaker, world.b, name="Beta")
    now = datetime.now(UTC).replace(microsecond=0)
    at = now - timedelta(hours=1)
    period = at.strftime("%Y-%m")
    await _record(sessionmaker, world.a, [Usage("runs.started", 4, "run-1", at)], at)
    await _record(sessionmaker, world.b, [Usage("runs.started", 6, "run-1", at)], at)
    assert await _push_command(settings) == 0
    pushed = capsys.readouterr().out
    assert f"{world.a.customer.customer_id}: 1 sent" in pushed and f"{world.b.customer.customer_id}: 1 sent" in pushed
    assert await _reconcile(settings, period) == 0
    assert "0 difference(s) in 20 meters and invoices of 2 customer(s)" in capsys.readouterr().out
    await _record(sessionmaker, world.b, [Usage("seats", 3, "seats-1", at)], at)
    assert await _reconcile(settings, period) == 1
    out = capsys.readouterr().out
    assert f"{world.b.customer.customer_id} meter seats: andon 3, stripe 0" in out
    assert str(world.a.customer.customer_id) not in out


async def test_stripe_prices_charge_what_andons_rating_charges(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], world: World, fake: StripeFake
) -> None:
    plan = Plan(
        key="mixed",
        name="Mixed",
        currency="EUR",
        items=[
            PlanItem(meter="", title="Fee", price=FlatPrice(amount=2500)),
            PlanItem(meter="runs.started", title="Runs", price=PerUnitPrice(unit_price="0.125", included=20)),
            PlanItem(
                meter="events.ingested",
                title="Events",
                price=GraduatedPrice(
                    included=100,
                    tiers=[
                        Tier(up_to=500, unit_price="0.004"),
                        Tier(up_to=2000, unit_price="0.002", flat_fee=300),
                        Tier(up_to=None, unit_price="0.001"),
                    ],
                ),
            ),
            PlanItem(
                meter="connector.calls",
                title="Calls",
                price=VolumePrice(
                    tiers=[Tier(up_to=100, unit_price="0.05"), Tier(up_to=None, unit_price="0.02", flat_fee=700)]
                ),
            ),
        ],
    )
    await _sync(settings, sessionmaker, world.a, plan=plan)
    sub = next(iter(fake.objects["subscription"].values()))
    now = datetime.now(UTC).replace(microsecond=0)
    at = now - timedelta(hours=1)
    period = at.strftime("%Y-%m")
    start = int(datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC).timestamp())
    end = int(period_end(period).timestamp())
    totals: dict[str, int] = {}
    for round_, usage in enumerate(({"runs.started": 37, "events.ingested": 1234, "connector.calls": 55},
                                    {"runs.started": 4, "events.ingested": 1500, "connector.calls": 300})):  # fmt: skip
        records = [Usage(meter, qty, f"{meter}-{round_}", at) for meter, qty in usage.items()]
        await _record(sessionmaker, world.a, records, at)
        await _push(settings, sessionmaker, world.a)
        for meter, qty in usage.items():
            totals[meter] = totals.get(meter, 0) + qty
        assert fake.invoice_for(sub["id"], start, end) == rate(plan, totals).total, totals


async def test_what_stripe_prices_cannot_say_is_refused_or_reported(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], world: World, fake: StripeFake
) -> None:
    volume = PlanItem(
        meter="runs.started", title="Runs", price=VolumePrice(included=5, tiers=[Tier(up_to=None, unit_price="1")])
    )
    with pytest.raises(ValidationFailedError) as refused:
        await _sync(settings, sessionmaker, world.a, plan=msgspec.structs.replace(PLAN, items=[volume]))
    assert refused.value.extra["errors"] == [
        {
            "field": "plan.items[0].price.included",
            "message": "a volume price with included units cannot be expressed in Stripe",
        }
    ]
    assert not fake.objects["price"] and not fake.objects["subscription"]
    committed = await _sync(settings, sessionmaker, world.a, plan=msgspec.structs.replace(PLAN, minimum=10000))
    assert committed.report.notes == [
        "plan standard: its minimum commitment is not a Stripe price; Stripe's invoices leave it out"
    ]
