"""Price books and plans (each owner its own, a changed plan is a new version, currencies and meters
checked by field) and subscriptions as segments: a plan change mid-period is prorated, a trial waives
its days, and no other customer or partner sees any of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.usage.service import Usage, UsageService
from andon.platform.db.scope import bind_tenant
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.tenants.factories import Org, World, auth

pytestmark = pytest.mark.anyio

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)
NOV_16 = datetime(2026, 11, 16, tzinfo=UTC)


def plan_doc(key: str, name: str, fee: int, *, trial_days: int = 0, currency: str = "EUR") -> dict[str, Any]:
    """A monthly fee, and events: 100 included, then 0.01 each up to 1,000 and 0.005 beyond."""
    return {
        "key": key,
        "name": name,
        "currency": currency,
        "trial_days": trial_days,
        "items": [
            {"meter": "", "title": "Platform fee", "price": {"type": "flat", "amount": fee}},
            {
                "meter": "events.ingested",
                "title": "Events",
                "price": {
                    "type": "graduated",
                    "included": 100,
                    "tiers": [{"up_to": 1000, "unit_price": "0.01"}, {"up_to": None, "unit_price": "0.005"}],
                },
            },
        ],
    }


def books_url(org: Org) -> str:
    return f"/api/v1/partners/{org.partner_id}/price-books"


def subscription_url(org: Org) -> str:
    return f"/api/v1/customers/{org.customer.customer_id}/subscription"


async def retail_book(api: httpx.AsyncClient, org: Org, *plans: dict[str, Any]) -> str:
    r = await api.post(
        books_url(org) + "/", json={"key": "standard", "name": "Standard", "currency": "EUR"}, headers=auth(org.key)
    )
    assert r.status_code == 201, r.text
    book = str(r.json()["id"])
    for plan in plans:
        r = await api.post(f"{books_url(org)}/{book}/plans", json=plan, headers=auth(org.key))
        assert r.status_code == 201, r.text
    return book


async def subscribe(api: httpx.AsyncClient, org: Org, book: str, plan: str, at: datetime) -> dict[str, Any]:
    body = {"price_book_id": book, "plan": plan, "at": at.isoformat()}
    r = await api.put(subscription_url(org) + "/", json=body, headers=auth(org.key))
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def record_usage(
    sessionmaker: async_sessionmaker[AsyncSession], org: Org, usage: list[Usage], now: datetime
) -> None:
    tenant = TenantContext(tenant_id=TenantId(org.customer.customer_id), partner_id=org.partner_id, principal=ENGINE)
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant.tenant_id, ENGINE)
        await UsageService(session, tenant).record(usage, now=now)


async def test_a_changed_plan_is_a_new_version_and_mistakes_are_refused_by_field(
    api: httpx.AsyncClient, world: World
) -> None:
    a = auth(world.a.key)
    book = await retail_book(api, world.a, plan_doc("basic", "Basic", 3000))
    plans = f"{books_url(world.a)}/{book}/plans"
    # The same plan again stores nothing; a changed one is version 2; the first stays as it was.
    same = await api.post(plans, json=plan_doc("basic", "Basic", 3000), headers=a)
    assert same.json()["version"] == 1
    changed = await api.post(plans, json=plan_doc("basic", "Basic", 3500), headers=a)
    assert changed.json()["version"] == 2
    versions = (await api.get(f"{plans}/basic", headers=a)).json()
    assert [(v["version"], v["document"]["items"][0]["price"]["amount"]) for v in versions] == [(1, 3000), (2, 3500)]
    listed = (await api.get(books_url(world.a) + "/", headers=a)).json()
    assert [(b["key"], b["owner"], [(p["key"], p["version"]) for p in b["plans"]]) for b in listed] == [
        ("standard", "partner", [("basic", 2)])
    ]

    wrong_currency = await api.post(plans, json=plan_doc("usd", "USD", 100, currency="USD"), headers=a)
    assert wrong_currency.status_code == 422
    assert wrong_currency.json()["errors"] == [
        {"field": "currency", "message": "the price book 'standard' is in EUR, not USD"}
    ]
    bad_meter = plan_doc("odd", "Odd", 100)
    bad_meter["items"][1]["meter"] = "widgets.made"
    r = await api.post(plans, json=bad_meter, headers=a)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "items[1].meter"
    bad_tiers = plan_doc("tiers", "Tiers", 100)
    bad_tiers["items"][1]["price"]["tiers"] = [
        {"up_to": None, "unit_price": "0.01"},
        {"up_to": 5, "unit_price": "0.01"},
    ]
    assert (await api.post(plans, json=bad_tiers, headers=a)).status_code in (400, 422)
    unknown_currency = await api.post(
        books_url(world.a) + "/", json={"key": "x", "name": "X", "currency": "XYZ"}, headers=a
    )
    assert unknown_currency.status_code == 422 and unknown_currency.json()["errors"][0]["field"] == "currency"
    twice = await api.post(
        books_url(world.a) + "/", json={"key": "standard", "name": "Again", "currency": "EUR"}, headers=a
    )
    assert twice.status_code == 409

    # Another partner, and a customer, see none of it and cannot write to it.
    b = auth(world.b.key)
    assert (await api.get(books_url(world.a) + "/", headers=b)).status_code == 404
    assert (await api.get(f"{books_url(world.a)}/{book}", headers=b)).status_code == 404
    assert (await api.post(plans, json=plan_doc("basic", "Basic", 1), headers=b)).status_code == 404
    assert (await api.get(f"{books_url(world.b)}/{book}", headers=b)).status_code == 404
    assert (await api.get(books_url(world.b) + "/", headers=b)).json() == []
    # A partner's books are its staff's business: its customers reach its plans through their subscription.
    assert (await api.get(books_url(world.a) + "/", headers=auth(world.a.customer.key))).status_code == 403
    assert (await api.get(books_url(world.a) + "/", headers=auth(world.operator_key))).status_code == 403


async def test_wholesale_books_are_the_operators_and_partners_read_them(api: httpx.AsyncClient, world: World) -> None:
    op = auth(world.operator_key)
    r = await api.post(
        "/api/v1/wholesale/price-books/", json={"key": "wholesale", "name": "Wholesale", "currency": "EUR"}, headers=op
    )
    assert r.status_code == 201, r.text
    book = r.json()["id"]
    r = await api.post(
        f"/api/v1/wholesale/price-books/{book}/plans", json=plan_doc("partner", "Partner", 1000), headers=op
    )
    assert r.status_code == 201 and r.json()["version"] == 1
    seen = (await api.get("/api/v1/wholesale/price-books/", headers=auth(world.a.key))).json()
    assert [(b["key"], b["owner"], b["partner_id"]) for b in seen] == [("wholesale", "operator", None)]
    # A partner cannot set them, a customer cannot read them, the operator cannot set a partner's retail.
    refused = await api.post(
        f"/api/v1/wholesale/price-books/{book}/plans", json=plan_doc("x", "X", 1), headers=auth(world.a.key)
    )
    assert refused.status_code == 403
    assert (await api.get("/api/v1/wholesale/price-books/", headers=auth(world.a.customer.key))).status_code == 403
    body = {"key": "standard", "name": "Standard", "currency": "EUR"}
    assert (await api.post(books_url(world.a) + "/", json=body, headers=op)).status_code == 403
    assert (await api.get(books_url(world.a) + "/", headers=op)).status_code == 403

    # The operator puts partner A on the wholesale plan; B sees nothing of A's, A cannot change it.
    url = f"/api/v1/partners/{world.a.partner_id}/wholesale-subscription"
    start = {"price_book_id": book, "plan": "partner", "at": NOV_1.isoformat()}
    r = await api.put(url + "/", json=start, headers=op)
    assert r.status_code == 200, r.text
    assert [s["plan"] for s in r.json()["history"]] == ["partner"]
    assert (await api.get(url + "/", headers=auth(world.a.key))).json()["history"][0]["plan"] == "partner"
    assert (await api.get(url + "/", headers=auth(world.b.key))).status_code == 404
    assert (await api.put(url + "/", json=start, headers=auth(world.a.key))).status_code == 403


async def test_a_plan_change_mid_period_is_prorated_and_usage_rated_on_the_new_plan(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    book = await retail_book(api, world.a, plan_doc("basic", "Basic", 3000), plan_doc("pro", "Pro", 6000))
    await subscribe(api, world.a, book, "basic", NOV_1)
    changed = await subscribe(api, world.a, book, "pro", NOV_16)
    assert [(s["plan"], s["starts_at"][:10], (s["ends_at"] or "")[:10]) for s in changed["history"]] == [
        ("basic", "2026-11-01", "2026-11-16"),
        ("pro", "2026-11-16", ""),
    ]
    await record_usage(
        sessionmaker, world.a, [Usage("events.ingested", 1600, "ev-1", datetime(2026, 11, 20, tzinfo=UTC))], NOV_16
    )
    r = await api.get(
        f"/api/v1/customers/{world.a.customer.customer_id}/invoices/preview",
        params={"period": "2026-11"},
        headers=auth(world.a.key),
    )
    assert r.status_code == 200, r.text
    preview = r.json()
    got = [
        (line["plan"], line["meter"], line["tier"], line["quantity"], line["amount_minor"]) for line in preview["lines"]
    ]
    # 15 of November's 30 days on each plan: half of each fee. The 1,600 events (100 included) are
    # rated on the plan in force at the end: of the 1,500 left, 1,000 at 0.01 and 500 at 0.005.
    assert got == [
        ("basic", "fee", None, 1, 1500),
        ("pro", "fee", None, 1, 3000),
        ("pro", "events.ingested", "1 to 1,000", 1000, 1000),
        ("pro", "events.ingested", "1,001 and up", 500, 250),
    ]
    assert preview["total_minor"] == 5750 == sum(line["amount_minor"] for line in preview["lines"])
    assert preview["lines"][0]["description"].startswith("Basic, 01 Nov 00:00 to 16 Nov 00:00: ")

    # A change that would go back in time, or to the plan it is on, is refused; so is another currency.
    early = {"price_book_id": book, "plan": "basic", "at": NOV_1.isoformat()}
    assert (await api.put(subscription_url(world.a) + "/", json=early, headers=auth(world.a.key))).status_code == 409
    same = {"price_book_id": book, "plan": "pro", "at": datetime(2026, 11, 20, tzinfo=UTC).isoformat()}
    assert (await api.put(subscription_url(world.a) + "/", json=same, headers=auth(world.a.key))).status_code == 409
    unknown = {"price_book_id": book, "plan": "gold"}
    r = await api.put(subscription_url(world.a) + "/", json=unknown, headers=auth(world.a.key))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "plan"

    # Cancelled on the 25th: the pro fee covers 9 days; usage is what was used.
    r = await api.post(
        subscription_url(world.a) + "/cancel",
        json={"at": datetime(2026, 11, 25, tzinfo=UTC).isoformat()},
        headers=auth(world.a.key),
    )
    assert r.status_code == 200 and r.json()["history"][-1]["ends_at"][:10] == "2026-11-25"
    preview = (
        await api.get(
            f"/api/v1/customers/{world.a.customer.customer_id}/invoices/preview",
            params={"period": "2026-11"},
            headers=auth(world.a.key),
        )
    ).json()
    assert [line["amount_minor"] for line in preview["lines"]] == [1500, 1800, 1000, 250]

    # The other customer, through its own key or its partner's, sees none of it.
    other = auth(world.b.customer.key)
    assert (await api.get(subscription_url(world.a) + "/", headers=other)).status_code == 404
    assert (await api.get(subscription_url(world.a) + "/", headers=auth(world.b.key))).status_code == 404
    assert (await api.get(subscription_url(world.b) + "/", headers=other)).json() == {"current": None, "history": []}
    mine = (await api.get(subscription_url(world.a) + "/", headers=auth(world.a.customer.key))).json()
    assert len(mine["history"]) == 2
    b_preview = await api.get(
        f"/api/v1/customers/{world.b.customer.customer_id}/invoices/preview",
        params={"period": "2026-11"},
        headers=other,
    )
    assert b_preview.json() == {
        "channel": "retail",
        "period": "2026-11",
        "currency": None,
        "lines": [],
        "total_minor": 0,
        "final": False,
    }
    # B's customer cannot subscribe to A's plans (they are not in its partner's books).
    r = await api.put(
        subscription_url(world.b) + "/", json={"price_book_id": book, "plan": "basic"}, headers=auth(world.b.key)
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "price_book_id"


async def test_a_trial_waives_the_fees_of_its_days(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    book = await retail_book(api, world.a, plan_doc("trial", "Trial", 3000, trial_days=12))
    # The customer's own administrator picks the plan from its partner's book.
    body = {"price_book_id": book, "plan": "trial", "at": NOV_1.isoformat()}
    r = await api.put(subscription_url(world.a) + "/", json=body, headers=auth(world.a.customer.key))
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["current"]["trial_ends_at"][:10] == "2026-11-13"
    await record_usage(sessionmaker, world.a, [Usage("events.ingested", 300, "t-1", NOV_16)], NOV_16)
    preview = (
        await api.get(
            f"/api/v1/customers/{world.a.customer.customer_id}/invoices/preview",
            params={"period": "2026-11"},
            headers=auth(world.a.key),
        )
    ).json()
    # 18 of 30 days paid: 3000 * 18 / 30; usage after the trial is charged (200 beyond the 100 included).
    assert [(line["meter"], line["amount_minor"]) for line in preview["lines"]] == [
        ("fee", 1800),
        ("events.ingested", 200),
    ]
