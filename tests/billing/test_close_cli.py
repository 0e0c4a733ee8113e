"""``andon billing close``: every partner's retail invoices and the operator's wholesale ones, each
issuer on its own, a summary per issuer; refused before the grace window ends; a second run issues
nothing; ``--partner`` closes that partner alone. The close reads every customer's usage at once,
and that read equals each customer's own totals and shows a partner nothing of another's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.invoices.cli import close_period
from andon.billing.invoices.service import billing_tenant
from andon.billing.usage.service import Usage, UsageService, partner_totals
from andon.platform.cli.main import cli
from andon.platform.config.settings import Settings
from andon.platform.db.scope import apply_principal_scope
from andon.tenants.orgs.service import CustomerService
from tests.billing.test_invoices import CLOSE_AT, OCT_1, october, partner_principal
from tests.billing.test_plans import plan_doc, record_usage
from tests.conftest import ON_POSTGRES
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


async def _wholesale(api: httpx.AsyncClient, world: World) -> None:
    """The operator's Partner plan (10.00 a customer and the same event tiers) for partner A."""
    op = auth(world.operator_key)
    created = await api.post(
        "/api/v1/wholesale/price-books/", json={"key": "wholesale", "name": "W", "currency": "EUR"}, headers=op
    )
    book = created.json()["id"]
    await api.post(f"/api/v1/wholesale/price-books/{book}/plans", json=plan_doc("partner", "Partner", 1000), headers=op)
    start = {"price_book_id": book, "plan": "partner", "at": OCT_1.isoformat()}
    r = await api.put(f"/api/v1/partners/{world.a.partner_id}/wholesale-subscription/", json=start, headers=op)
    assert r.status_code == 200, r.text


async def _numbers(api: httpx.AsyncClient, world: World) -> dict[str, list[str]]:
    a = await api.get(f"/api/v1/partners/{world.a.partner_id}/invoices", headers=auth(world.a.key))
    b = await api.get(f"/api/v1/partners/{world.b.partner_id}/invoices", headers=auth(world.b.key))
    return {"a": sorted(i["number"] for i in a.json()), "b": sorted(i["number"] for i in b.json())}


async def test_close_issues_every_issuers_documents_once_with_a_summary(
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await october(api, sessionmaker, world.a)
    await october(api, sessionmaker, world.b)
    await _wholesale(api, world)

    assert await close_period(settings, "2026-10", now=CLOSE_AT) == 0
    out = capsys.readouterr().out.splitlines()
    # Retail: 30.00 fee + 12.525 of events = 42.52 each; wholesale to Alpha: 10.00 + 12.525 = 22.52.
    assert "Alpha: 1 document(s), total 4252 EUR (minor units)" in out
    assert "Bravo: 1 document(s), total 4252 EUR (minor units)" in out
    assert "Andon (wholesale): 1 document(s), total 2252 EUR (minor units)" in out
    assert out[-1] == "2026-10: 3 document(s) issued by 3 issuer(s)"
    # Alpha sees its retail invoice and the wholesale one it received; Beta only its own.
    assert await _numbers(api, world) == {"a": ["ALPHA-2026-000001", "ANDON-2026-000001"], "b": ["BRAVO-2026-000001"]}

    assert await close_period(settings, "2026-10", now=CLOSE_AT) == 0
    again = capsys.readouterr().out.splitlines()
    assert "Alpha: 0 document(s), total 0 (minor units)" in again
    assert "Andon (wholesale): 0 document(s), total 0 (minor units)" in again
    assert again[-1] == "2026-10: 0 document(s) issued by 3 issuer(s)"
    assert await _numbers(api, world) == {"a": ["ALPHA-2026-000001", "ANDON-2026-000001"], "b": ["BRAVO-2026-000001"]}


async def test_close_is_refused_before_the_grace_window_ends_and_one_partner_closes_alone(
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await october(api, sessionmaker, world.a)
    await october(api, sessionmaker, world.b)
    await _wholesale(api, world)

    # October's grace runs to 4 November 00:00 UTC: a second before it, nothing is closed.
    early = datetime(2026, 11, 3, 23, 59, 59, tzinfo=UTC)
    assert await close_period(settings, "2026-10", now=early) == 2
    refused = capsys.readouterr()
    assert "2026-10 cannot be closed before 2026-11-04T00:00:00+00:00" in refused.err and refused.out == ""
    assert await _numbers(api, world) == {"a": [], "b": []}

    assert await close_period(settings, "2026-10", world.b.partner_id, now=CLOSE_AT) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["Bravo: 1 document(s), total 4252 EUR (minor units)", "2026-10: 1 document(s) issued by 1 issuer(s)"]
    assert await _numbers(api, world) == {"a": [], "b": ["BRAVO-2026-000001"]}


def test_the_command_sits_in_the_billing_group_and_checks_the_period() -> None:
    runner = CliRunner()
    shown = runner.invoke(cli, ["billing", "--help"])
    assert shown.exit_code == 0
    assert all(name in shown.output for name in ("close", "reconcile", "push-usage"))
    bad = runner.invoke(cli, ["billing", "close", "--period", "2026-13"])
    assert bad.exit_code == 2 and "a month as YYYY-MM" in bad.output
    partner = runner.invoke(cli, ["billing", "close", "--period", "2026-10", "--partner", "not-a-uuid"])
    assert partner.exit_code == 2 and "UUID" in partner.output


async def test_the_close_reads_all_customers_usage_at_once_as_each_customers_own_totals(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await october(api, sessionmaker, world.a)
    at = datetime(2026, 10, 20, tzinfo=UTC)
    gauges = [
        Usage("seats", 4, "seats-1", at),
        Usage("seats", 9, "seats-2", at + timedelta(hours=1)),
        Usage("seats", 6, "seats-3", at + timedelta(hours=2)),
        Usage("assets.active", 30, "assets-1", at),
        Usage("assets.active", 12, "assets-2", at + timedelta(days=1)),
        Usage("sites.active", 1, "site-1", at, {"site": "north"}),
        Usage("sites.active", 1, "site-2", at, {"site": "south"}),
        Usage("sites.active", 1, "site-3", at, {"site": "north"}),
        Usage("runs.started", 5, "run-1", at),
    ]
    await record_usage(sessionmaker, world.a, gauges, datetime(2026, 10, 21, tzinfo=UTC))
    await record_usage(sessionmaker, world.b, [Usage("runs.started", 3, "run-1", at)], at)
    partner = partner_principal(world.a)
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, partner)
        customer = await CustomerService(session, partner).get(world.a.customer.customer_id)
        own = await UsageService(session, billing_tenant(customer, partner)).totals("2026-10")
        together = await partner_totals(session, world.a.partner_id, "2026-10")
    assert together == {world.a.customer.customer_id: own}
    assert {t.meter: t.quantity for t in own} == {
        "assets.active": 12,
        "events.ingested": 1605,
        "runs.started": 5,
        "seats": 9,
        "sites.active": 2,
    }
    if ON_POSTGRES:
        # The second wall: partner B asking for partner A's usage gets nothing from the database.
        other = partner_principal(world.b)
        async with sessionmaker() as session, session.begin():
            await apply_principal_scope(session, other)
            assert await partner_totals(session, world.a.partner_id, "2026-10") == {}
