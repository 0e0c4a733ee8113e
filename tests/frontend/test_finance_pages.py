"""The finance pages without JavaScript, on the demo's own billing seed: the customer's usage by meter
(totals, a daily chart with one series per meter, per site), its live preview and invoices; the
partner's customers, margin, period close (refused while the grace window is open), price books and
the plan form (refusals next to their fields), and a plan change shown prorated in the preview. Each
number is compared with what the services compute; nobody sees another customer's or partner's."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from html import unescape

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.invoices.service import InvoiceService, billing_tenant, period_bounds
from andon.billing.plans.service import PriceBookService
from andon.billing.pricing.money import format_minor
from andon.billing.usage.meters import GRACE, period_of
from andon.billing.usage.service import UsageService
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.db.types import utcnow
from andon.platform.devmode.billing_demo import partner_seed_principal, seed_billing
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.models import Customer, Partner
from tests.support.browser import csrf_token, new_user_signed_in
from tests.tenants.factories import Org, World

pytestmark = pytest.mark.anyio


async def _orgs(sessionmaker: async_sessionmaker[AsyncSession], org: Org) -> tuple[Partner, Customer]:
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system_principal(ALL_PERMISSIONS, "test"))
        partner = (await session.execute(select(Partner).where(Partner.id == org.partner_id))).scalar_one()
        customer = (await session.execute(select(Customer).where(Customer.id == org.customer.customer_id))).scalar_one()
        session.expunge_all()
        return partner, customer


@pytest.fixture
async def seeded(sessionmaker: async_sessionmaker[AsyncSession], world: World) -> dict[str, tuple[Partner, Customer]]:
    """Both partners of the world with the demo's books, plans, subscriptions and usage."""
    orgs = {"a": await _orgs(sessionmaker, world.a), "b": await _orgs(sessionmaker, world.b)}
    partners = {k: p for k, (p, _) in orgs.items()}
    added = await seed_billing(sessionmaker, partners, {k: [c] for k, (_, c) in orgs.items()})
    assert added > 0
    # Seeding again adds nothing (idempotency keys; books, plans and subscriptions exist).
    assert await seed_billing(sessionmaker, partners, {k: [c] for k, (_, c) in orgs.items()}) == 0
    return orgs


async def _person(
    app: Litestar, api: httpx.AsyncClient, org: Org, email: str, role: str, *, partner: bool
) -> httpx.AsyncClient:
    url = (
        f"/api/v1/partners/{org.partner_id}/users" if partner else f"/api/v1/customers/{org.customer.customer_id}/users"
    )
    key = org.key if partner else org.customer.key
    return await new_user_signed_in(app, api, users_url=url, key=key, email=email, role=role)


@pytest.fixture
async def fiona(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.a, "fiona@alpha-customer.example", "finance", partner=False)
    yield browser
    await browser.aclose()


@pytest.fixture
async def pat(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.a, "pat@alpha.example", "partner_admin", partner=True)
    yield browser
    await browser.aclose()


def _previous(period: str) -> str:
    start, _ = period_bounds(period)
    return period_of(start - timedelta(days=1))


async def _expected(
    sessionmaker: async_sessionmaker[AsyncSession], partner: Partner, customer: Customer, period: str
) -> tuple[dict[str, int], dict[str, list[tuple[str, int]]], int, str | None]:
    """What the services say: totals per meter, daily series, the preview's total and currency."""
    principal = partner_seed_principal(partner)
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, principal)
        tenant = billing_tenant(customer, principal)
        usage = UsageService(session, tenant)
        totals = {t.meter: t.quantity for t in await usage.totals(period)}
        daily = await usage.daily(period)
        draft = await InvoiceService(session, principal).preview(tenant, period)
        return totals, daily, draft.total, draft.currency


def _meter_row(page: str, meter: str) -> str:
    match = re.search(rf'<tr data-meter="{re.escape(meter)}">(.*?)</tr>', page, re.S)
    assert match, meter
    return match.group(1)


async def test_the_customer_sees_its_usage_chart_preview_and_invoices(
    sessionmaker: async_sessionmaker[AsyncSession],
    seeded: dict[str, tuple[Partner, Customer]],
    fiona: httpx.AsyncClient,
    pat: httpx.AsyncClient,
) -> None:
    partner, customer = seeded["a"]
    period = period_of(utcnow())
    for shown in (period, _previous(period)):
        totals, daily, total, currency = await _expected(sessionmaker, partner, customer, shown)
        r = await fiona.get("/admin/billing", params={"period": shown})
        assert r.status_code == 200, r.text
        page = r.text
        assert totals and currency == "EUR"
        for meter, quantity in totals.items():
            assert f"{quantity:,} " in _meter_row(page, meter), meter
        # The days of a summed meter add up to its total (both aggregated in SQL, separately).
        for meter in ("events.ingested", "runs.started", "connector.calls"):
            assert sum(n for _, n in daily[meter]) == totals[meter], meter
        assert len(daily["events.ingested"]) == len({d for d, _ in daily["events.ingested"]}) > 1
        # One series per meter with usage, each a bar per day it has usage on.
        series = re.findall(r'<g class="series" data-meter="([^"]+)"', page)
        assert series == sorted(daily)
        for meter, points in daily.items():
            drawn = re.search(rf'data-meter="{re.escape(meter)}"[^>]*>(.*?)</g>', page, re.S)
            assert drawn and drawn.group(1).count("<rect") == len([p for p in points if p[1]]), meter
        assert '<title id="usage-chart-title">' in page and "numbers as a table" in page
        assert f'<td class="num preview-total">{format_minor(total, "EUR")}</td>' in page
        assert f"{customer.slug} plant" in unescape(page)  # usage per site, by the site's name
    # The raw usage CSV the page links to has every record of the period.
    link = f"/api/v1/customers/{customer.id}/usage.csv?period={period}"
    page = (await fiona.get("/admin/billing")).text
    assert link in unescape(page)
    rows = list(csv.DictReader(io.StringIO((await fiona.get(link)).text)))
    totals, _, _, _ = await _expected(sessionmaker, partner, customer, period)
    assert sum(int(r["quantity"]) for r in rows if r["meter"] == "events.ingested") == totals["events.ingested"]
    assert "No invoices yet" in page

    # Once the partner closes last month (when its grace has passed), the invoice is listed with
    # its printable form and the CSV of its lines, both working for the customer.
    previous = _previous(period)
    _, end = period_bounds(previous)
    token = csrf_token((await pat.get("/partner/billing")).text)
    closed = await pat.post("/partner/billing/close", data={"csrf_token": token, "period": previous})
    if utcnow() < end + GRACE:
        assert closed.status_code == 409 and "can be closed from" in closed.text
        return
    assert closed.status_code == 303, closed.text
    page = (await fiona.get("/admin/billing")).text
    ids = re.findall(r'<tr id="document-([0-9a-f-]{36})">', page)
    assert len(ids) == 1
    api = f"/api/v1/customers/{customer.id}/invoices/{ids[0]}"
    html = await fiona.get(api + "/html")
    _, _, total, _ = await _expected(sessionmaker, partner, customer, previous)
    assert html.status_code == 200 and format_minor(total, "EUR") in html.text
    lines = await fiona.get(api + "/lines.csv")
    assert lines.status_code == 200 and lines.headers["content-type"].startswith("text/csv")


async def test_the_partner_sees_margin_closes_periods_and_manages_plans(
    sessionmaker: async_sessionmaker[AsyncSession],
    seeded: dict[str, tuple[Partner, Customer]],
    pat: httpx.AsyncClient,
) -> None:
    partner, customer = seeded["a"]
    period = period_of(utcnow())
    principal = partner_seed_principal(partner)
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, principal)
        margin = await InvoiceService(session, principal).margin(partner.id, period)
    page = (await pat.get("/partner/billing")).text
    (row,) = margin.customers
    assert row.margin_minor is not None and row.retail_minor > 0 and row.wholesale_minor > 0
    assert f'<td class="num margin-value">{format_minor(row.margin_minor, "EUR")}</td>' in page
    assert page.count('<rect class="retail"') == 1 and page.count('<rect class="wholesale"') == 1
    assert seeded["b"][1].name not in page  # never another partner's customers

    # The current period cannot be closed yet: the page says from when.
    token = csrf_token(page)
    refused = await pat.post("/partner/billing/close", data={"csrf_token": token, "period": period})
    _, end = period_bounds(period)
    assert refused.status_code == 409
    assert f"{period} can be closed from {(end + GRACE).isoformat()}" in unescape(refused.text)

    # A new plan: a mistake in the tiers and an unknown meter come back next to their fields.
    books = (await pat.get("/partner/billing/plans")).text
    book = re.search(r'href="/partner/billing/plans/([0-9a-f-]{36})/new"', books)
    assert book and "Professional" in books
    form_url = f"/partner/billing/plans/{book.group(1)}"
    token = csrf_token((await pat.get(form_url + "/new")).text)
    plan = {
        "csrf_token": token,
        "key": "growth",
        "name": "Growth",
        "minimum": "100.00",
        "trial_days": "0",
        "item-0-title": "Platform fee",
        "item-0-meter": "",
        "item-0-type": "flat",
        "item-0-amount": "99.50",
        "item-1-title": "Events",
        "item-1-meter": "events.ingested",
        "item-1-type": "graduated",
        "item-1-included": "1000",
        "item-1-tiers": "* 0.01\n5000 0.005",
        "item-2-title": "",
    }
    bad = await pat.post(form_url, data=plan)
    assert bad.status_code == 422
    assert re.search(r'id="item-1-tiers-error">[^<]*only the last tier is without end', bad.text), bad.text
    odd = await pat.post(form_url, data=plan | {"item-1-tiers": "5000 0.01\n* 0.005", "item-1-meter": "widgets"})
    assert odd.status_code == 422 and re.search(r'id="item-1-meter-error">[^<]*widgets', odd.text), odd.text
    cents = await pat.post(form_url, data=plan | {"item-1-tiers": "5000 0.01\n* 0.005", "item-0-amount": "9.999"})
    assert cents.status_code == 422 and 'id="item-0-amount-error">at most 2 decimal places in EUR' in cents.text
    saved = await pat.post(form_url, data=plan | {"item-1-tiers": "5000 0.01\n* 0.005"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, principal)
        (stored,) = await PriceBookService(session, principal).versions(partner.id, uuid.UUID(book.group(1)), "growth")
    assert stored.document["items"][0]["price"] == {"type": "flat", "amount": 9950}
    assert stored.document["items"][1]["price"]["tiers"] == [
        {"up_to": 5000, "unit_price": "0.01", "flat_fee": 0},
        {"up_to": None, "unit_price": "0.005", "flat_fee": 0},
    ]
    assert stored.document["minimum"] == 10000
    edit = (await pat.get(f"{form_url}/growth")).text
    assert "5000 0.01\n* 0.005" in edit and 'value="99.50"' in edit

    # Moving the customer to Growth in the middle of the period: the preview has a part per plan.
    start, end = period_bounds(period)
    middle = start + timedelta(days=10)
    customer_url = f"/partner/billing/customers/{customer.id}"
    token = csrf_token((await pat.get(customer_url)).text)
    wrong = await pat.post(customer_url + "/subscription", data={"csrf_token": token, "plan": "x", "at": "soon"})
    assert wrong.status_code == 422 and 'id="at-error">a date' in wrong.text and 'id="plan-error">' in wrong.text
    moved = await pat.post(
        customer_url + "/subscription",
        data={"csrf_token": token, "plan": f"{book.group(1)}:growth", "at": middle.date().isoformat()},
        follow_redirects=False,
    )
    assert moved.status_code == 303, moved.text
    _, _, total, _ = await _expected(sessionmaker, partner, customer, period)
    page = unescape((await pat.get(customer_url, params={"period": period})).text)
    assert f'<td class="num preview-total">{format_minor(total, "EUR")}</td>' in page
    assert f"Professional, 01 {start:%b} 00:00 to {middle:%d %b} 00:00" in page
    assert f"Growth, {middle:%d %b} 00:00 to" in page


async def test_nobody_sees_another_customers_or_partners_billing(
    app: Litestar,
    sessionmaker: async_sessionmaker[AsyncSession],
    api: httpx.AsyncClient,
    world: World,
    seeded: dict[str, tuple[Partner, Customer]],
    pat: httpx.AsyncClient,
    fiona: httpx.AsyncClient,
) -> None:
    customer_a = seeded["a"][1]
    bea = await _person(app, api, world.b, "bea@bravo.example", "partner_admin", partner=True)
    books = (await pat.get("/partner/billing/plans")).text
    book = re.search(r'href="/partner/billing/plans/([0-9a-f-]{36})/new"', books)
    assert book
    for path in (
        f"/partner/billing/customers/{customer_a.id}",
        f"/partner/billing/plans/{book.group(1)}/new",
        f"/partner/billing/plans/{book.group(1)}/professional",
    ):
        assert (await bea.get(path)).status_code == 404, path
    token = csrf_token((await bea.get("/partner/billing")).text)
    hijack = await bea.post(
        f"/partner/billing/customers/{customer_a.id}/subscription",
        data={"csrf_token": token, "plan": f"{book.group(1)}:professional"},
    )
    assert hijack.status_code == 404
    own = (await bea.get("/partner/billing")).text
    assert customer_a.name not in own and seeded["b"][1].name in own

    # The other customer's finance person sees its own numbers only.
    bob = await _person(app, api, world.b, "bob@bravo-customer.example", "finance", partner=False)
    _, _, total_b, _ = await _expected(sessionmaker, seeded["b"][0], seeded["b"][1], period_of(utcnow()))
    page_b = (await bob.get("/admin/billing")).text
    assert f'<td class="num preview-total">{format_minor(total_b, "EUR")}</td>' in page_b
    assert str(customer_a.id) not in page_b
    # The CSV links of this customer's page lead nowhere for another customer.
    assert (await bob.get(f"/api/v1/customers/{customer_a.id}/usage.csv")).status_code == 404
    # Customer staff without billing:read, partner staff on the customer's page and the reverse: 403.
    tech = await _person(app, api, world.a, "tom@alpha-customer.example", "technician", partner=False)
    assert (await tech.get("/admin/billing")).status_code == 403
    assert "/admin/billing" not in (await tech.get("/account")).text
    assert 'href="/admin/billing"' in (await fiona.get("/account")).text
    assert (await pat.get("/admin/billing")).status_code == 403
    assert (await fiona.get("/partner/billing")).status_code == 403
    engineer = await _person(app, api, world.a, "erin@alpha.example", "partner_engineer", partner=True)
    assert (await engineer.get("/partner/billing")).status_code == 403
    for browser in (bea, bob, tech, engineer):
        await browser.aclose()
