"""The usage collector meters what the platform did: events through ingress, runs and steps executed
by a real worker, in each tenant's own records, each fact once however often the collector passes."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import andon.billing.usage.collectors as collectors
from andon.billing.usage.collectors import collect_usage
from andon.billing.usage.meters import period_of
from andon.billing.usage.service import UsageService
from andon.platform.db.scope import bind_tenant, enter_metering_mode
from andon.platform.db.types import utcnow
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.support.effects_fake import EffectsFake, effects_fake
from tests.support.workers import drain, relay_all, running_worker
from tests.tenants.factories import Org, Tenant, World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"
STRUCTURED = {"content-type": "application/cloudevents+json"}


@pytest.fixture
def fake() -> Any:
    with effects_fake() as running:
        yield running


def _flow(url: str) -> dict[str, Any]:
    return {
        "steps": [
            {"key": "classify", "kind": "set", "values": {"critical": "event.severity == 'critical'"}, "next": "page"},
            {"key": "page", "kind": "action", "capability": "http.post", "inputs": {"url": f"{url}/page", "json": {}}},
        ]
    }


def _alarm(tenant: Tenant, n: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"alarm-{n}",
        "source": "urn:plc:press",
        "type": ALARM,
        "subject": f"Press alarm {n}",
        "severity": "critical",
        "assetid": tenant.slug + "-P",
        "data": {"code": f"E{n}", "message": "Over temperature"},
    }


async def _totals(sessionmaker: async_sessionmaker[AsyncSession], org: Org) -> dict[str, int]:
    tenant = TenantContext(tenant_id=TenantId(org.customer.customer_id), partner_id=org.partner_id, principal=ENGINE)
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant.tenant_id, ENGINE)
        return {t.meter: t.quantity for t in await UsageService(session, tenant).totals(period_of(utcnow()))}


async def _by_template(sessionmaker: async_sessionmaker[AsyncSession], org: Org) -> list[tuple[str | None, int]]:
    tenant = TenantContext(tenant_id=TenantId(org.customer.customer_id), partner_id=org.partner_id, principal=ENGINE)
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant.tenant_id, ENGINE)
        return await UsageService(session, tenant).breakdown(period_of(utcnow()), "steps.executed", "template")


async def test_each_tenant_is_metered_for_what_it_did_once_however_often_the_collector_passes(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    fake: EffectsFake,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = world.a.customer, world.b.customer
    key = f"wf-{uuid.uuid4().hex[:6]}"
    r = await api.post(
        f"/api/v1/customers/{a.customer_id}/workflows/",
        headers=auth(a.key),
        json={"key": key, "name": "Page", "definition": _flow(fake.url), "trigger_type": ALARM},
    )
    assert r.status_code == 201, r.text
    for email in ("tess@a.example", "sam@a.example"):
        made = await api.post(
            f"/api/v1/customers/{a.customer_id}/users",
            json={"email": email, "display_name": "Tess Tech", "grants": [{"role": "technician"}]},
            headers=auth(a.key),
        )
        assert made.status_code == 201, made.text
    for tenant, count in ((a, 2), (b, 1)):
        for n in range(count):
            sent = await api.post("/api/v1/events", headers={**auth(tenant.key), **STRUCTURED}, json=_alarm(tenant, n))
            assert sent.status_code == 201, sent.text
    await relay_all(app)
    with running_worker(app):
        drain(app)

    # Rows younger than the lag wait for a later pass.
    assert await collect_usage(sessionmaker, lag=timedelta(hours=1), now=utcnow()) == 2 * 2  # gauges only
    assert "events.ingested" not in await _totals(sessionmaker, world.a)

    # Small batches: the marks carry each pass on from where the last batch ended.
    monkeypatch.setattr(collectors, "BATCH", 1)
    later = utcnow() + timedelta(seconds=5)
    assert await collect_usage(sessionmaker, lag=timedelta(0), now=later) > 0
    assert await collect_usage(sessionmaker, lag=timedelta(0), now=later) == 0
    # A collector that reads everything again (another scheduler, marks lost) adds nothing twice.
    async with sessionmaker() as session, session.begin():
        await enter_metering_mode(session)
        await session.execute(text("DELETE FROM usage_marks"))
    assert await collect_usage(sessionmaker, lag=timedelta(0), now=later) == 0

    mine = await _totals(sessionmaker, world.a)
    # Two alarms, one alert: the repeat is correlated into it and starts no second run.
    runs = (await api.get(f"/api/v1/customers/{a.customer_id}/runs/", headers=auth(a.key))).json()["total"]
    assert mine["events.ingested"] == 2 and mine["runs.started"] == runs >= 1
    assert mine["steps.executed"] == 2 * runs and mine["actions.executed"] == runs
    assert mine["sites.active"] == 1 and mine["assets.active"] == 1 and mine["seats"] == 2
    assert await _by_template(sessionmaker, world.a) == [(key, 2 * runs)]

    theirs = await _totals(sessionmaker, world.b)
    assert theirs["events.ingested"] == 1
    assert "runs.started" not in theirs and "steps.executed" not in theirs, "b has no workflow: nothing ran there"


async def test_a_step_run_again_counts_again_and_a_skipped_step_not_at_all() -> None:
    at = utcnow()
    row = (uuid.uuid4(), at, uuid.uuid4(), uuid.uuid4(), None, "wf", "action", "succeeded")
    again = (row[0], at + timedelta(minutes=1), *row[2:])
    first, second = list(collectors._from_step(row)), list(collectors._from_step(again))
    assert [u.meter for u in first] == ["steps.executed", "actions.executed"]
    assert {u.idempotency_key for u in first}.isdisjoint(u.idempotency_key for u in second)
    assert list(collectors._from_step((*row[:7], "skipped"))) == []
