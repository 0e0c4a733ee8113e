"""Invoices: a period closes once into immutable documents whose lines add up to their totals,
numbered without gaps per issuer even when closes race; credit notes are new documents; the printable
form wears the issuer's brand; CSV streams lines and raw usage; the partner sees its margin per
customer; and no other customer or partner sees any of it."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, cast

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.invoices.repository import InvoiceRepository
from andon.billing.invoices.schemas import CreditLineCreate, CreditNoteCreate
from andon.billing.invoices.service import InvoiceService, period_bounds, segment_lines
from andon.billing.plans.models import PlanVersion
from andon.billing.plans.schemas import SubscriptionChange
from andon.billing.plans.service import Segment, SubscriptionService
from andon.billing.pricing.prices import FlatPrice, Plan, PlanItem
from andon.billing.usage.service import Usage
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.http.errors import ConflictError
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind, system_principal
from andon.tenants.orgs.models import Customer
from andon.tenants.orgs.schemas import CustomerCreate
from andon.tenants.orgs.service import CustomerService
from tests.billing.test_plans import plan_doc, record_usage, retail_book, subscribe
from tests.conftest import ON_POSTGRES
from tests.tenants.factories import Org, World, auth

pytestmark = pytest.mark.anyio

OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
CLOSE_AT = datetime(2026, 11, 5, tzinfo=UTC)
BRAND = {"product_name": "Alpha Ops", "primary_colour": "#123456", "accent_colour": "#0b5d3b", "hosts": []}


def partner_principal(org: Org) -> Principal:
    return Principal(
        subject_kind=SubjectKind.API_KEY,
        subject_id=None,
        label=f"{org.slug} admin",
        org_kind=OrgKind.PARTNER,
        partner_id=org.partner_id,
        permissions=ALL_PERMISSIONS,
    )


async def october(api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], org: Org) -> str:
    """The Basic plan from October 1st, and 1,605 events in October (1,505 beyond the 100 included:
    1,000 at 0.01 and 505 at 0.005, i.e. 10.00 + 2.525 EUR)."""
    book = await retail_book(api, org, plan_doc("basic", "Basic", 3000))
    await subscribe(api, org, book, "basic", OCT_1)
    usage = [
        Usage("events.ingested", 1600, "oct-1", datetime(2026, 10, 10, tzinfo=UTC)),
        Usage("events.ingested", 5, "oct-2", datetime(2026, 10, 11, tzinfo=UTC)),
    ]
    await record_usage(sessionmaker, org, usage, datetime(2026, 10, 12, tzinfo=UTC))
    return book


def _csv(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


async def test_closing_a_period_issues_each_invoice_once_and_only_its_parties_see_it(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await october(api, sessionmaker, world.a)
    partner = auth(world.a.key)
    close = f"/api/v1/partners/{world.a.partner_id}/invoices/close"
    early = await api.post(close, json={"period": "2026-11"}, headers=partner)
    assert early.status_code == 409 and early.json()["errors"][0]["field"] == "period"

    first = await api.post(close, json={"period": "2026-10"}, headers=partner)
    assert first.status_code == 200, first.text
    [invoice] = first.json()["created"]
    assert invoice["number"] == "ALPHA-2026-000001"
    assert (invoice["kind"], invoice["channel"], invoice["currency"]) == ("invoice", "retail", "EUR")
    # 30.00 fee + 10.00 + 2.525 of events = 42.525, rounded once (half to even) to 42.52, and the
    # lines add up to it.
    assert [(line["meter"], line["amount_minor"]) for line in invoice["lines"]] == [
        ("fee", 3000),
        ("events.ingested", 1000),
        ("events.ingested", 252),
    ]
    assert invoice["total_minor"] == 4252 == sum(line["amount_minor"] for line in invoice["lines"])
    again = await api.post(close, json={"period": "2026-10"}, headers=partner)
    assert again.status_code == 200 and again.json()["created"] == []

    listed = (await api.get(f"/api/v1/partners/{world.a.partner_id}/invoices", headers=partner)).json()
    assert [i["number"] for i in listed] == ["ALPHA-2026-000001"]
    mine = f"/api/v1/customers/{world.a.customer.customer_id}/invoices"
    customer = auth(world.a.customer.key)
    assert [i["id"] for i in (await api.get(mine, headers=customer)).json()] == [invoice["id"]]
    shown = (await api.get(f"{mine}/{invoice['id']}", headers=customer)).json()
    assert shown["total_minor"] == 4252 and len(shown["lines"]) == 3

    # Nobody else: not the other customer (through either path), not the other partner, not the
    # operator (a partner's retail invoices are not its business), not a customer closing.
    other = auth(world.b.customer.key)
    theirs = f"/api/v1/customers/{world.b.customer.customer_id}/invoices"
    assert (await api.get(theirs, headers=other)).json() == []
    assert (await api.get(f"{theirs}/{invoice['id']}", headers=other)).status_code == 404
    assert (await api.get(f"{mine}/{invoice['id']}", headers=other)).status_code == 404
    assert (
        await api.get(f"/api/v1/partners/{world.a.partner_id}/invoices", headers=auth(world.b.key))
    ).status_code == 404
    b_own = f"/api/v1/partners/{world.b.partner_id}/invoices"
    assert (await api.get(b_own, headers=auth(world.b.key))).json() == []
    assert (await api.get(f"{b_own}/{invoice['id']}", headers=auth(world.b.key))).status_code == 404
    assert (
        await api.post(
            f"/api/v1/partners/{world.b.partner_id}/invoices/close",
            json={"period": "2026-10"},
            headers=auth(world.b.key),
        )
    ).json()["created"] == []
    operator = auth(world.operator_key)
    assert (await api.get(f"/api/v1/partners/{world.a.partner_id}/invoices", headers=operator)).json() == []
    assert (
        await api.get(f"/api/v1/partners/{world.a.partner_id}/invoices/{invoice['id']}", headers=operator)
    ).status_code == 404
    assert (await api.post(close, json={"period": "2026-10"}, headers=operator)).status_code == 403
    # A customer does not even learn its partner's record exists.
    assert (await api.post(close, json={"period": "2026-10"}, headers=customer)).status_code == 404


async def test_credit_notes_are_new_documents_with_their_own_numbers(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await october(api, sessionmaker, world.a)
    partner = auth(world.a.key)
    base = f"/api/v1/partners/{world.a.partner_id}/invoices"
    [invoice] = (await api.post(f"{base}/close", json={"period": "2026-10"}, headers=partner)).json()["created"]
    credits = f"{base}/{invoice['id']}/credit-notes"
    body = {"reason": "Outage on 3 October", "lines": [{"description": "Goodwill", "amount_minor": 500}]}
    r = await api.post(credits, json=body, headers=partner)
    assert r.status_code == 201, r.text
    note = r.json()
    assert (note["kind"], note["number"], note["total_minor"]) == ("credit_note", "ALPHA-CN-2026-000001", -500)
    assert note["credited_invoice_id"] == invoice["id"] and note["lines"][0]["amount_minor"] == -500
    # More than is left (42.52 - 5.00), or a whole-invoice credit after a partial one, is refused.
    too_much = {"reason": "x", "lines": [{"description": "All", "amount_minor": 3753}]}
    r = await api.post(credits, json=too_much, headers=partner)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines"
    assert (await api.post(credits, json={"reason": "all"}, headers=partner)).status_code == 409
    rest = await api.post(
        credits, json={"reason": "rest", "lines": [{"description": "Rest", "amount_minor": 3752}]}, headers=partner
    )
    assert rest.json()["number"] == "ALPHA-CN-2026-000002"
    # The invoice itself is unchanged; the customer sees all three documents.
    assert (await api.get(f"{base}/{invoice['id']}", headers=partner)).json()["total_minor"] == 4252
    seen = (
        await api.get(f"/api/v1/customers/{world.a.customer.customer_id}/invoices", headers=auth(world.a.customer.key))
    ).json()
    assert sorted((d["kind"], d["total_minor"]) for d in seen) == [
        ("credit_note", -3752),
        ("credit_note", -500),
        ("invoice", 4252),
    ]
    # Only the issuer credits: not the customer, not another partner.
    assert (await api.post(credits, json=body, headers=auth(world.a.customer.key))).status_code == 404
    assert (await api.post(credits, json=body, headers=auth(world.b.key))).status_code == 404
    b_path = f"/api/v1/partners/{world.b.partner_id}/invoices/{invoice['id']}/credit-notes"
    assert (await api.post(b_path, json=body, headers=auth(world.b.key))).status_code == 404


async def test_printable_invoice_wears_the_issuers_brand_and_csv_streams_lines_and_usage(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await october(api, sessionmaker, world.a)
    partner = auth(world.a.key)
    r = await api.put(f"/api/v1/partners/{world.a.partner_id}/branding", json=BRAND, headers=partner)
    assert r.status_code == 200, r.text
    base = f"/api/v1/partners/{world.a.partner_id}/invoices"
    [invoice] = (await api.post(f"{base}/close", json={"period": "2026-10"}, headers=partner)).json()["created"]
    mine = f"/api/v1/customers/{world.a.customer.customer_id}"
    customer = auth(world.a.customer.key)

    page = await api.get(f"{mine}/invoices/{invoice['id']}/html", headers=customer)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Alpha Ops" in page.text and "--primary: #123456" in page.text
    assert "ALPHA-2026-000001" in page.text and "42.52 EUR" in page.text and "Alpha-Customer" in page.text
    assert "Andon" not in page.text

    lines = await api.get(f"{mine}/invoices/{invoice['id']}/lines.csv", headers=customer)
    assert lines.status_code == 200 and lines.headers["content-type"].startswith("text/csv")
    rows = _csv(lines.text)
    assert [(r["meter"], r["tier"], r["quantity"], r["amount_minor"], r["amount"]) for r in rows] == [
        ("fee", "", "1", "3000", "30.00"),
        ("events.ingested", "1 to 1,000", "1000", "1000", "10.00"),
        ("events.ingested", "1,001 and up", "505", "252", "2.52"),
    ]
    assert sum(int(r["amount_minor"]) for r in rows) == invoice["total_minor"]
    assert (await api.get(f"{base}/{invoice['id']}/lines.csv", headers=partner)).text == lines.text

    usage = await api.get(f"{mine}/usage.csv", params={"period": "2026-10"}, headers=customer)
    assert [(r["meter"], r["quantity"], r["idempotency_key"]) for r in _csv(usage.text)] == [
        ("events.ingested", "1600", "oct-1"),
        ("events.ingested", "5", "oct-2"),
    ]
    # The other customer's export of the same period is empty; its paths to A's invoice are 404s.
    theirs = f"/api/v1/customers/{world.b.customer.customer_id}"
    other = auth(world.b.customer.key)
    assert _csv((await api.get(f"{theirs}/usage.csv", params={"period": "2026-10"}, headers=other)).text) == []
    assert (await api.get(f"{theirs}/invoices/{invoice['id']}/lines.csv", headers=other)).status_code == 404
    assert (await api.get(f"{theirs}/invoices/{invoice['id']}/html", headers=other)).status_code == 404
    assert (await api.get(f"{mine}/usage.csv", params={"period": "2026-10"}, headers=other)).status_code == 404


async def test_wholesale_is_billed_per_customer_and_the_partner_sees_its_margin(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await october(api, sessionmaker, world.a)
    op = auth(world.operator_key)
    book = (
        await api.post(
            "/api/v1/wholesale/price-books/", json={"key": "wholesale", "name": "W", "currency": "EUR"}, headers=op
        )
    ).json()["id"]
    await api.post(f"/api/v1/wholesale/price-books/{book}/plans", json=plan_doc("partner", "Partner", 1000), headers=op)
    start = {"price_book_id": book, "plan": "partner", "at": OCT_1.isoformat()}
    assert (
        await api.put(f"/api/v1/partners/{world.a.partner_id}/wholesale-subscription/", json=start, headers=op)
    ).status_code == 200

    partner = auth(world.a.key)
    margin_url = f"/api/v1/partners/{world.a.partner_id}/margin"
    live = (await api.get(margin_url, params={"period": "2026-10"}, headers=partner)).json()
    # Retail 42.52 (preview); wholesale: 10.00 fee + 12.525 of events, rounded once to 22.52.
    row = {
        k: live["customers"][0][k]
        for k in (
            "customer_name",
            "retail_minor",
            "retail_source",
            "wholesale_minor",
            "wholesale_source",
            "margin_minor",
        )
    }
    assert row == {
        "customer_name": "Alpha-Customer",
        "retail_minor": 4252,
        "retail_source": "preview",
        "wholesale_minor": 2252,
        "wholesale_source": "preview",
        "margin_minor": 2000,
    }

    await api.post(f"/api/v1/partners/{world.a.partner_id}/invoices/close", json={"period": "2026-10"}, headers=partner)
    closed = await api.post("/api/v1/wholesale/close", json={"period": "2026-10"}, headers=op)
    assert closed.status_code == 200, closed.text
    [wholesale] = closed.json()["created"]
    assert (wholesale["number"], wholesale["channel"], wholesale["recipient_name"], wholesale["customer_id"]) == (
        "ANDON-2026-000001",
        "wholesale",
        "Alpha",
        None,
    )
    assert {line["customer_id"] for line in wholesale["lines"]} == {str(world.a.customer.customer_id)}
    assert wholesale["total_minor"] == 2252 == sum(line["amount_minor"] for line in wholesale["lines"])
    assert (await api.post("/api/v1/wholesale/close", json={"period": "2026-10"}, headers=op)).json()["created"] == []

    invoiced = (await api.get(margin_url, params={"period": "2026-10"}, headers=partner)).json()["customers"][0]
    assert (invoiced["retail_source"], invoiced["wholesale_source"], invoiced["margin_minor"]) == (
        "invoiced",
        "invoiced",
        2000,
    )
    # The partner sees the wholesale invoice it received; its customer and the other partner do not;
    # the operator sees no partner's margin.
    channels = sorted(
        i["channel"] for i in (await api.get(f"/api/v1/partners/{world.a.partner_id}/invoices", headers=partner)).json()
    )
    assert channels == ["retail", "wholesale"]
    customer_docs = (
        await api.get(f"/api/v1/customers/{world.a.customer.customer_id}/invoices", headers=auth(world.a.customer.key))
    ).json()
    assert [d["channel"] for d in customer_docs] == ["retail"]
    assert (
        await api.get(f"/api/v1/wholesale/invoices/{wholesale['id']}", headers=auth(world.a.key))
    ).status_code == 403
    assert (
        await api.get(f"/api/v1/partners/{world.b.partner_id}/invoices/{wholesale['id']}", headers=auth(world.b.key))
    ).status_code == 404
    assert (await api.get(margin_url, params={"period": "2026-10"}, headers=op)).status_code == 403
    assert (await api.get(margin_url, params={"period": "2026-10"}, headers=auth(world.b.key))).status_code == 404
    page = await api.get(f"/api/v1/wholesale/invoices/{wholesale['id']}/html", headers=op)
    assert "ANDON-2026-000001" in page.text and "Alpha-Customer" in page.text


async def _more_customers(
    sessionmaker: async_sessionmaker[AsyncSession], org: Org, book: uuid.UUID, count: int
) -> None:
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        customers = CustomerService(session, system)
        for n in range(count):
            made = await customers.create(
                CustomerCreate(
                    slug=f"{org.slug}-extra-{n}", name=f"Extra {n}", partner_id=org.partner_id, default_timezone="UTC"
                )
            )
            tenant = await customers.open_tenant(made.id)
            await SubscriptionService(session, tenant).change(
                SubscriptionChange(price_book_id=book, plan="basic", at=OCT_1)
            )


async def _close(sessionmaker: async_sessionmaker[AsyncSession], org: Org, *, fail: bool = False) -> list[str]:
    principal = partner_principal(org)
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, principal)
        created = await InvoiceService(session, principal).close(org.partner_id, "2026-10", now=CLOSE_AT)
        if fail:
            raise RuntimeError("the close fails after it has taken its numbers")
        return [d.invoice.number for d in created]


async def test_numbers_have_no_gaps_per_issuer_when_closes_race_or_fail(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    book = uuid.UUID(await october(api, sessionmaker, world.a))
    await _more_customers(sessionmaker, world.a, book, 5)
    # A close that fails after taking six numbers gives them all back.
    with pytest.raises(RuntimeError):
        await _close(sessionmaker, world.a, fail=True)
    # Four closes at once: exactly one issues the six invoices, the others find them done.
    results = await asyncio.gather(*(_close(sessionmaker, world.a) for _ in range(4)))
    issued = sorted(n for r in results for n in r)
    assert issued == [f"ALPHA-2026-{n:06d}" for n in range(1, 7)]
    assert sorted(len(r) for r in results) == [0, 0, 0, 6]

    principal = partner_principal(world.a)
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, principal)
        invoices = await InvoiceRepository.for_partner(session, world.a.partner_id).list(period="2026-10")
        assert all(i.total_minor > 0 for i in invoices)

    async def credit(invoice_id: uuid.UUID) -> str:
        async with sessionmaker() as session, session.begin():
            await apply_principal_scope(session, principal)
            note = await InvoiceService(session, principal).credit(
                world.a.partner_id,
                invoice_id,
                CreditNoteCreate(reason="race", lines=[CreditLineCreate(description="c", amount_minor=1)]),
                now=CLOSE_AT,
            )
            return note.invoice.number

    notes = await asyncio.gather(*(credit(i.id) for i in invoices))
    assert sorted(notes) == [f"ALPHA-CN-2026-{n:06d}" for n in range(1, 7)]
    # Another issuer's numbers start at one of their own.
    await october(api, sessionmaker, world.b)
    assert await _close(sessionmaker, world.b) == ["BRAVO-2026-000001"]


async def test_closing_too_early_is_refused(world: World, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    principal = partner_principal(world.a)
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, principal)
        with pytest.raises(ConflictError, match="2026-11-04"):
            await InvoiceService(session, principal).close(
                world.a.partner_id, "2026-10", now=datetime(2026, 11, 3, tzinfo=UTC)
            )


@pytest.mark.postgres
async def test_invoices_are_immutable_for_the_application(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert ON_POSTGRES
    await october(api, sessionmaker, world.a)
    assert await _close(sessionmaker, world.a) == ["ALPHA-2026-000001"]
    principal = partner_principal(world.a)
    for statement in (
        "UPDATE invoices SET total_minor = 0",
        "DELETE FROM invoices",
        "UPDATE invoice_lines SET amount_minor = 0",
        "DELETE FROM invoice_lines",
    ):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with sessionmaker() as session, session.begin():
                await apply_principal_scope(session, principal)
                await session.execute(text(statement))
    # Row-level security: the partner sees its document; the other partner and the bare role see none.
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, principal)
        assert (await session.execute(text("SELECT count(*) FROM invoice_lines"))).scalar_one() == 3
    other = partner_principal(world.b)
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, other)
        for table in ("invoices", "invoice_lines", "subscriptions", "plan_versions", "price_books"):
            assert (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0, table  # noqa: S608


async def test_the_usage_export_is_written_row_by_row(
    app: Litestar, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    at = datetime(2026, 10, 3, tzinfo=UTC)
    usage = [Usage("runs.started", 1, f"run-{n}", at, {"site": "north"}) for n in range(1200)]
    await record_usage(sessionmaker, world.a, usage, at)
    path = f"/api/v1/customers/{world.a.customer.customer_id}/usage.csv"
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"period=2026-10",
        "root_path": "",
        "headers": [(b"host", b"andon.test"), (b"authorization", f"Bearer {world.a.customer.key}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("andon.test", 80),
    }
    sent: list[dict[str, Any]] = []
    received: list[bool] = []
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if received:
            # As a server does: the client goes away once the whole body has been sent.
            await finished.wait()
            return {"type": "http.disconnect"}
        received.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    await app(cast(Any, scope), cast(Any, receive), cast(Any, send))
    assert sent[0]["status"] == 200
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]
    # The header and every record go out as they are read, not as one body built in memory.
    assert len(bodies) == 1201
    rows = _csv(b"".join(bodies).decode())
    assert len(rows) == 1200 and rows[0]["dimensions"] == '{"site":"north"}'


def test_wholesale_fees_follow_each_customers_own_subscription() -> None:
    start, end = period_bounds("2026-10")
    wholesale = Plan(
        key="partner",
        name="Partner",
        currency="EUR",
        items=[PlanItem(meter="", title="Per customer", price=FlatPrice(amount=3100))],
    )
    version = PlanVersion(key="partner", version=1)
    segment = Segment(uuid.uuid4(), wholesale, version, OCT_1, None, None)
    customer = Customer(id=uuid.uuid4(), name="Late joiner")
    # Subscribed from the 16th: 16 of October's 31 days of the fee.
    joined = [(datetime(2026, 10, 16, tzinfo=UTC), end)]
    [line] = segment_lines([segment], {}, start, end, within=joined, customer=customer)
    assert (line.exact, line.customer_id, line.plan_key) == (Fraction(1600), customer.id, "partner")
    assert segment_lines([segment], {}, start, end, within=[], customer=customer) == []
