"""Subscription changes reach Stripe after they commit, through the official SDK against the fake
Stripe: a change lands once, a Stripe outage leaves it pending and a later retry delivers it, a
cancellation ends the Stripe subscription, the housekeeping jobs exist only with Stripe configured,
and the reconcile command compares Stripe's invoices with Andon's issued ones."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.invoices.cli import close_period
from andon.billing.stripe.cli import _reconcile
from andon.billing.stripe.pending import deliver_pending, push_all_usage, subscription_key
from andon.billing.usage.service import Usage
from andon.platform.config.settings import Settings, StripeSettings
from andon.platform.workers.housekeeping import housekeeping_jobs
from tests.billing.test_invoices import CLOSE_AT, october
from tests.billing.test_plans import plan_doc, record_usage, retail_book, subscribe, subscription_url
from tests.support.contracts.server import serve
from tests.support.stripe_fake import API_KEY, StripeFake, decode_form
from tests.tenants.factories import World, auth

pytestmark = [
    pytest.mark.anyio,
    # The SDK's httpx transport posts its form body as bytes, which httpx 0.28 calls deprecated.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with serve(StripeFake()) as running:
        yield running


@pytest.fixture
def settings(settings: Settings, fake: StripeFake) -> Settings:
    stripe = StripeSettings(api_key=API_KEY, webhook_secret=fake.webhook_secret, api_base=fake.url)
    return settings.model_copy(update={"stripe": stripe})


def _subscriptions(fake: StripeFake, tenant: object) -> list[dict[str, Any]]:
    return [s for s in fake.objects["subscription"].values() if s["metadata"].get("andon_tenant_id") == str(tenant)]


def _creates(fake: StripeFake, path: str) -> int:
    return sum(1 for r in fake.api_requests() if r.method == "POST" and r.path.split("?")[0] == path)


async def test_a_subscription_change_lands_in_stripe_once(
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: StripeFake,
) -> None:
    book = await retail_book(api, world.a, plan_doc("basic", "Basic", 3000), plan_doc("pro", "Pro", 9000))
    now = datetime.now(UTC).replace(microsecond=0)
    await subscribe(api, world.a, book, "basic", now - timedelta(days=2))
    # The request committed without a word to Stripe: the change waits in the queue.
    assert fake.api_requests() == []

    first = await deliver_pending(sessionmaker, settings.stripe)
    assert (first.delivered, first.failed) == (1, {})
    tenant = world.a.customer.customer_id
    [sub] = _subscriptions(fake, tenant)
    assert sub["metadata"]["andon_subscription_id"] == subscription_key(tenant)
    basic_plan = sub["metadata"]["andon_plan_id"]
    assert len(fake.objects["customer"]) == 1 and len(sub["items"]["data"]) == 2  # the fee, the events
    requests = len(fake.api_requests())
    # Nothing pending any more: another delivery sends nothing.
    assert (await deliver_pending(sessionmaker, settings.stripe)).delivered == 0
    assert len(fake.api_requests()) == requests

    # A plan change: the same Stripe subscription, its items swapped for the new plan's prices.
    await subscribe(api, world.a, book, "pro", now - timedelta(days=1))
    assert (await deliver_pending(sessionmaker, settings.stripe)).delivered == 1
    [changed] = _subscriptions(fake, tenant)
    assert changed["id"] == sub["id"] and changed["metadata"]["andon_plan_id"] != basic_plan
    assert _creates(fake, "/v1/subscriptions") == 1 and _creates(fake, "/v1/customers") == 1
    # The other tenant changed nothing and has nothing in Stripe.
    assert _subscriptions(fake, world.b.customer.customer_id) == []

    # A cancellation ends the Stripe subscription at the moment Andon's ends, once.
    r = await api.post(subscription_url(world.a) + "/cancel", json={"at": now.isoformat()}, headers=auth(world.a.key))
    assert r.status_code == 200, r.text
    assert (await deliver_pending(sessionmaker, settings.stripe)).delivered == 1
    ends = [
        decode_form(parse_qsl(r.body.decode()))
        for r in fake.api_requests()
        if r.method == "POST" and r.path.split("?")[0] == f"/v1/subscriptions/{sub['id']}"
    ]
    assert ends[-1] == {"cancel_at": str(int(now.timestamp())), "proration_behavior": "none"}
    assert len(_subscriptions(fake, tenant)) == 1


async def test_a_stripe_outage_leaves_the_change_pending_and_a_later_retry_delivers_it(
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: StripeFake,
) -> None:
    book = await retail_book(api, world.a, plan_doc("basic", "Basic", 3000))
    now = datetime.now(UTC).replace(microsecond=0)
    await subscribe(api, world.a, book, "basic", now - timedelta(days=2))
    # Stripe answers every call with an error (more than the SDK's own retries).
    fake.failures = [fake.error(400, "Stripe is having a bad day") for _ in range(20)]
    now = datetime.now(UTC) + timedelta(seconds=1)
    down = await deliver_pending(sessionmaker, settings.stripe, now=now)
    tenant = world.a.customer.customer_id
    assert down.delivered == 0 and "bad day" in down.failed[tenant]
    assert fake.objects["customer"] == {} and fake.objects["subscription"] == {}
    # Not due again until its back-off has passed.
    fake.failures = []
    assert (await deliver_pending(sessionmaker, settings.stripe, now=now + timedelta(seconds=10))).delivered == 0
    assert fake.objects["customer"] == {}

    later = await deliver_pending(sessionmaker, settings.stripe, now=now + timedelta(minutes=1))
    assert (later.delivered, later.failed) == (1, {})
    assert len(fake.objects["customer"]) == 1 and len(_subscriptions(fake, tenant)) == 1
    assert (await deliver_pending(sessionmaker, settings.stripe, now=now + timedelta(hours=2))).delivered == 0

    # The housekeeping push sends the usage recorded since to the linked customer.
    await record_usage(sessionmaker, world.a, [Usage("events.ingested", 7, "e-1", now)], now)
    assert await push_all_usage(sessionmaker, settings.stripe) == 1
    assert await push_all_usage(sessionmaker, settings.stripe) == 0


async def test_stripe_jobs_run_only_when_stripe_is_configured(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    configured = {job.name for job in housekeeping_jobs(sessionmaker, settings)}
    assert {"stripe-subscriptions", "stripe-usage"} <= configured
    bare = settings.model_copy(update={"stripe": StripeSettings()})
    assert not {job.name for job in housekeeping_jobs(sessionmaker, bare)} & {"stripe-subscriptions", "stripe-usage"}


async def test_reconcile_compares_stripes_invoices_with_andons_issued_total(
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: StripeFake,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await october(api, sessionmaker, world.a)
    assert (await deliver_pending(sessionmaker, settings.stripe)).delivered == 1
    assert await close_period(settings, "2026-10", now=CLOSE_AT) == 0
    capsys.readouterr()
    assert await _reconcile(settings, "2026-10") == 1
    out = capsys.readouterr().out
    # Andon issued 42.52 EUR for October; Stripe invoiced nothing for it.
    assert f"{world.a.customer.customer_id} invoice_total 2026-10: andon 4252, stripe 0" in out
