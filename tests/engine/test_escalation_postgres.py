"""On PostgreSQL: an acknowledgement and a page racing in two open transactions (the page finds the
ladder stopped once the acknowledgement commits), and row-level security hiding one tenant's ladders,
pages and breaches from a raw query in another's scope."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.engine.repository import SchedulerRepository
from andon.platform.engine.run_timers import RunTimers
from andon.platform.engine.runs import RunControl
from andon.tenants.plant.on_duty import duty_people
from tests.engine.test_escalation import THREE_LEVELS, FakeClock, berlin, crew, in_tenant, ladder, scheduler, start
from tests.engine.test_escalation import workflow as make_workflow
from tests.tenants.factories import World

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]
TABLES = ("escalations", "escalation_pages", "sla_breaches")


async def test_a_page_waiting_on_an_acknowledgement_in_flight_is_not_sent(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    await crew(api, c)
    made = await make_workflow(api, c, escalation=THREE_LEVELS)
    clock = FakeClock(berlin(26, 10, 0))
    run_id = await start(sessionmaker, c, made, clock())
    clock.set(berlin(26, 10, 5))
    claimed: list[Any] = []

    async def claim_only(session: AsyncSession, rows: Sequence[Any], now: datetime) -> None:
        claimed.extend(rows)

    async with sessionmaker() as session, session.begin():
        repo = SchedulerRepository(session)
        await repo.enter()
        await repo.fire_due(clock(), 100, run_timers=claim_only)
    assert len(claimed) == 1

    async def page() -> None:
        async with sessionmaker() as session, session.begin():
            await SchedulerRepository(session).enter()
            await RunTimers(duty_people)(session, claimed, clock())

    async with in_tenant(sessionmaker, c) as (session, ctx):
        await RunControl(session, ctx).acknowledge(run_id, "ana", clock())
        await session.flush()  # the ladder's row is locked by this open transaction now
        paging = asyncio.create_task(page())
        await asyncio.sleep(0.5)
        assert not paging.done(), "the page waits for the acknowledgement's transaction"
    await asyncio.wait_for(paging, 10)
    state = await ladder(sessionmaker, c, run_id)
    assert state.pages == [] and state.escalations[0].status == "acknowledged"


async def test_row_level_security_hides_another_tenants_ladders(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    a, b = world.a.customer, world.b.customer
    await crew(api, a)
    made = await make_workflow(api, a, escalation=THREE_LEVELS, sla=[{"name": "all", "acknowledge_within": 60}])
    clock = FakeClock(berlin(26, 9, 0))
    await start(sessionmaker, a, made, clock())
    clock.advance(400)
    await scheduler(sessionmaker, clock).fire_due()
    async with sessionmaker() as session:
        for tenant, other in ((a, b), (b, a)):
            async with session.begin():
                await session.execute(
                    text("SELECT set_config('andon.tenant_id', :t, true)"), {"t": str(tenant.customer_id)}
                )
                seen = {
                    table: {
                        str(r[0])
                        for r in await session.execute(text(f"SELECT tenant_id FROM {table}"))  # noqa: S608
                    }
                    for table in TABLES
                }
            assert all(str(other.customer_id) not in ids for ids in seen.values()), seen
            expected = {str(a.customer_id)} if tenant is a else set()
            assert seen == dict.fromkeys(TABLES, expected)
