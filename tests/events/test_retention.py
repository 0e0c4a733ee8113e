"""Raw payloads are kept for the retention period, then cleared by the sweep; the normalised event
stays, and the sweep touches no other column or tenant scope."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.sources.intake import expire_delivery_log
from andon.connectors.sources.models import WebhookDelivery
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.events.models import Event
from andon.platform.events.repository import EventRepository
from andon.platform.events.retention import expire_raw_payloads
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
STRUCTURED = {"content-type": "application/cloudevents+json"}


async def _send(api: httpx.AsyncClient, tenant: Tenant, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        event = {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "source": "urn:test:retention",
            "type": "dev.andon.machine.alarm.v1",
            "data": {"code": "E1", "message": "jam"},
        }
        r = await api.post("/api/v1/events", headers={**auth(tenant.key), **STRUCTURED}, json=event)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


async def _age(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, ids: list[str], days: int) -> None:
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        await CustomerService(session, system).open_tenant(tenant.customer_id)
        await session.execute(
            update(Event)
            .where(Event.tenant_id == tenant.customer_id, Event.id.in_([uuid.UUID(i) for i in ids]))
            .values(created_at=datetime.now(UTC) - timedelta(days=days))
        )


async def _raw(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> dict[str, bytes | None]:
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        ctx = await CustomerService(session, system).open_tenant(tenant.customer_id)
        rows, _ = await EventRepository(session, ctx).search(limit=100, offset=0)
        return {str(r.id): r.raw for r in rows}


async def test_the_sweep_clears_only_expired_raw_payloads_of_every_tenant(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    a, b = world.a.customer, world.b.customer
    old_a, fresh_a, old_b = await _send(api, a, 3), await _send(api, a, 2), await _send(api, b, 1)
    await _age(sessionmaker, a, old_a, days=31)
    await _age(sessionmaker, b, old_b, days=40)

    assert await expire_raw_payloads(sessionmaker, retention_days=30) == 4
    raw_a, raw_b = await _raw(sessionmaker, a), await _raw(sessionmaker, b)
    assert all(raw_a[i] is None for i in old_a) and all(raw_a[i] for i in fresh_a)
    assert raw_b[old_b[0]] is None
    assert await expire_raw_payloads(sessionmaker, retention_days=30) == 0

    # The normalised event stays, and its page says the raw payload has expired.
    r = await api.get("/api/v1/events", headers=auth(a.key), params={"limit": 10})
    assert r.json()["total"] == 5


@pytest.mark.postgres
async def test_the_maintenance_mode_opens_events_to_the_sweep_only(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    if sessionmaker.kw["bind"].dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    await _send(api, world.a.customer, 1)

    async def count(**settings: str) -> int:
        async with sessionmaker() as session, session.begin():
            for name, value in settings.items():
                await session.execute(text("SELECT set_config(:n, :v, true)"), {"n": f"andon.{name}", "v": value})
            return int((await session.execute(text("SELECT count(*) FROM events"))).scalar_one())

    assert await count() == 0 and await count(relay="on") == 0 and await count(auth_lookup="on") == 0
    assert await count(maintenance="on") == 1


async def test_the_delivery_log_keeps_its_period_only(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/connections"
    made = (await api.post(base + "/", headers=auth(c.key), json={"name": "hook"})).json()
    for _ in range(3):  # refused (unsigned): logged all the same
        assert (await api.post(made["webhook_path"], content=b"{}")).status_code == 401
    first = (await api.get(f"{base}/{made['id']}/deliveries", headers=auth(c.key))).json()["items"][-1]
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        await CustomerService(session, system).open_tenant(c.customer_id)
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.tenant_id == c.customer_id, WebhookDelivery.id == uuid.UUID(first["id"]))
            .values(created_at=datetime.now(UTC) - timedelta(days=15))
        )
    assert await expire_delivery_log(sessionmaker, days=14) == 1
    left = (await api.get(f"{base}/{made['id']}/deliveries", headers=auth(c.key))).json()
    assert left["total"] == 2 and first["id"] not in {d["id"] for d in left["items"]}
