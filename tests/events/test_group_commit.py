"""Group commit: events of concurrent requests share transactions, and each request still gets its
own outcome, only after its events are committed, visible only inside its own tenant."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.rbac import P
from andon.platform.db.scope import apply_principal_scope
from andon.platform.events.committer import GroupCommitter
from andon.platform.events.envelope import CloudEvent, parse_structured
from andon.platform.events.repository import EventRepository, OutboxRepository
from andon.platform.http.errors import NotFoundError
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind
from andon.tenants.orgs.service import CustomerService
from andon.tenants.plant.references import resolve_plant_refs
from tests.conftest import ON_POSTGRES
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"


def _body(event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:plc:press-line",
        "type": ALARM,
        "data": {"code": "E42", "message": "Over temperature"},
        **extra,
    }


def _event(event_id: str, **extra: Any) -> CloudEvent:
    return parse_structured(msgspec.json.encode(_body(event_id, **extra)))


def _sender(tenant: Tenant) -> Principal:
    return Principal(
        subject_kind=SubjectKind.API_KEY,
        subject_id=tenant.key_id,
        label=f"api key of {tenant.slug}",
        org_kind=OrgKind.CUSTOMER,
        customer_id=tenant.customer_id,
        permissions=frozenset({P.EVENTS_WRITE}),
    )


async def _open(session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> TenantContext:
    return await CustomerService(session, principal).open_tenant(customer_id)


async def _stored(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> set[str]:
    principal = _sender(tenant)
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, principal)
        ctx = await _open(session, principal, tenant.customer_id)
        rows, _ = await EventRepository(session, ctx).search(limit=500, offset=0)
        return {row.event_id for row in rows}


async def _pending_outbox(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session, session.begin():
        outbox = OutboxRepository(session)
        await outbox.enter_relay_mode()
        return await outbox.count_pending()


async def test_concurrent_requests_of_two_tenants_are_all_committed_each_in_its_own_tenant(
    api: httpx.AsyncClient, app: Litestar, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    a, b = world.a.customer, world.b.customer

    async def send(tenant: Tenant, n: int) -> httpx.Response:
        headers = {**auth(tenant.key), "content-type": "application/cloudevents+json"}
        body = _body(f"{tenant.slug}-{n}", assetid=f"{tenant.slug}-P") if n % 5 == 0 else _body(f"{tenant.slug}-{n}")
        return await api.post("/api/v1/events", headers=headers, json=body)

    sent = await asyncio.gather(*(send(t, n) for n in range(20) for t in (a, b)))
    assert [r.status_code for r in sent] == [201] * 40, [r.text for r in sent if r.status_code != 201]
    committer: GroupCommitter = app.state.event_committer
    assert committer.batches < 40  # some transactions carried several requests

    assert await _stored(sessionmaker, a) == {f"{a.slug}-{n}" for n in range(20)}
    assert await _stored(sessionmaker, b) == {f"{b.slug}-{n}" for n in range(20)}
    assert await _pending_outbox(sessionmaker) == 40  # one message per event, committed with it

    listed = (await api.get("/api/v1/events", headers=auth(a.key), params={"limit": 100})).json()
    assert listed["total"] == 20 and {e["event_id"] for e in listed["items"]} == {f"{a.slug}-{n}" for n in range(20)}
    placed = next(e for e in listed["items"] if e["event_id"] == f"{a.slug}-0")
    assert placed["asset_id"] == str(a.asset_id) and placed["site_id"] == str(a.site_id)

    # A repeat, sent concurrently with new events, answers 200 with the original acceptance.
    first = next(r.json() for r in sent if r.json()["event_id"] == f"{a.slug}-3")
    again, fresh = await asyncio.gather(send(a, 3), send(a, 99))
    assert again.status_code == 200 and again.json() == {**first, "duplicate": True}
    assert fresh.status_code == 201
    assert await _pending_outbox(sessionmaker) == 41


async def test_a_repeat_within_one_shared_transaction_is_stored_once(
    world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    a = world.a.customer
    committer = GroupCommitter(sessionmaker, _open, resolve_plant_refs, flushers=1)
    principal = _sender(a)
    first, second = await asyncio.gather(
        committer.accept(principal, a.customer_id, [_event("twice")], channel="http"),
        committer.accept(principal, a.customer_id, [_event("twice")], channel="http"),
    )
    assert committer.batches == 1
    assert (first[0].duplicate, second[0].duplicate) == (False, True) and first[0].id == second[0].id
    assert await _pending_outbox(sessionmaker) == 1


async def test_a_failing_request_does_not_sink_the_others(
    world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    a, b = world.a.customer, world.b.customer

    async def open_or_refuse(session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> TenantContext:
        if customer_id == b.customer_id:
            raise NotFoundError("no such tenant here")
        return await _open(session, principal, customer_id)

    committer = GroupCommitter(sessionmaker, open_or_refuse, resolve_plant_refs, flushers=1)
    outcomes = await asyncio.gather(
        committer.accept(_sender(a), a.customer_id, [_event("a-1")], channel="http"),
        committer.accept(_sender(b), b.customer_id, [_event("b-1")], channel="http"),
        committer.accept(_sender(a), a.customer_id, [_event("a-2"), _event("a-3")], channel="http"),
        return_exceptions=True,
    )
    assert committer.retried == 1  # the shared transaction failed, then each request went alone
    assert isinstance(outcomes[1], NotFoundError)
    assert not isinstance(outcomes[0], BaseException) and [x.event_id for x in outcomes[0]] == ["a-1"]
    assert not isinstance(outcomes[2], BaseException) and [x.event_id for x in outcomes[2]] == ["a-2", "a-3"]
    assert await _stored(sessionmaker, a) == {"a-1", "a-2", "a-3"}
    assert await _stored(sessionmaker, b) == set()
    assert await _pending_outbox(sessionmaker) == 3


@pytest.mark.postgres
async def test_a_value_the_database_refuses_fails_only_its_own_request(
    world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert ON_POSTGRES
    a = world.a.customer
    committer = GroupCommitter(sessionmaker, _open, resolve_plant_refs, flushers=1)
    principal = _sender(a)
    good, bad = await asyncio.gather(
        committer.accept(principal, a.customer_id, [_event("fine")], channel="http"),
        # PostgreSQL refuses a NUL character in text; SQLite would store it.
        committer.accept(principal, a.customer_id, [_event("nul", subject="bad\x00subject")], channel="http"),
        return_exceptions=True,
    )
    assert isinstance(bad, DBAPIError)
    assert not isinstance(good, BaseException) and good[0].event_id == "fine"
    assert committer.retried == 1
    assert await _stored(sessionmaker, a) == {"fine"}
    assert await _pending_outbox(sessionmaker) == 1
