"""Usage records: a retried emit counts once, every record lands in its period (late ones in the
period they arrived in, flagged), meters aggregate in SQL by their kind, and tenants never mix."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.usage.meters import GRACE, landing, period_of
from andon.billing.usage.service import Usage, UsageService
from andon.platform.db.scope import bind_tenant
from andon.platform.engine.executor import ENGINE
from andon.platform.http.errors import ValidationFailedError
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.conftest import ON_POSTGRES
from tests.tenants.factories import Org, World

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _tenant(org: Org) -> TenantContext:
    return TenantContext(tenant_id=TenantId(org.customer.customer_id), partner_id=org.partner_id, principal=ENGINE)


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession], org: Org, usage: list[Usage], now: datetime = NOW
) -> int:
    tenant = _tenant(org)
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant.tenant_id, ENGINE)
        return await UsageService(session, tenant).record(usage, now=now)


async def _totals(sessionmaker: async_sessionmaker[AsyncSession], org: Org, period: str) -> dict[str, int]:
    tenant = _tenant(org)
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant.tenant_id, ENGINE)
        return {t.meter: t.quantity for t in await UsageService(session, tenant).totals(period)}


def test_records_land_in_their_period_unless_they_come_after_its_grace() -> None:
    october = datetime(2026, 10, 31, 23, 59, tzinfo=UTC)
    assert landing(october, datetime(2026, 11, 3, 23, 59, tzinfo=UTC)) == ("2026-10", False)
    assert landing(october, datetime(2026, 11, 1, tzinfo=UTC) + GRACE + timedelta(seconds=1)) == ("2026-11", True)
    assert landing(datetime(2026, 12, 31, 23, tzinfo=UTC), datetime(2027, 1, 10, tzinfo=UTC)) == ("2027-01", True)
    assert period_of(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "2026-12"


@pytest.mark.slow
async def test_a_hundred_thousand_records_with_duplicates_out_of_order_count_once_in_their_period(
    sessionmaker: async_sessionmaker[AsyncSession], world: World
) -> None:
    rng = random.Random(7)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    facts = [
        Usage(
            meter=rng.choice(["events.ingested", "steps.executed", "connector.calls"]),
            quantity=rng.randint(1, 5),
            idempotency_key=f"fact-{n}",
            # Three months of facts, in no particular order.
            occurred_at=start + timedelta(seconds=rng.randint(0, 80 * 86400)),
            dimensions={"site": rng.choice(["north", "south"])},
        )
        for n in range(95_000)
    ]
    # Sent roughly in time order but shuffled within each stretch, with 5 % sent twice (retries).
    facts.sort(key=lambda f: f.occurred_at)
    emitted = facts + rng.sample(facts, 5_000)
    emitted.sort(key=lambda f: f.occurred_at + timedelta(hours=rng.uniform(-48, 48)))
    # Each batch is recorded an hour after its newest fact; every fourth arrives twelve days late.
    added = 0
    counted: dict[str, tuple[str, bool]] = {}
    for number, offset in enumerate(range(0, len(emitted), 10_000)):
        batch = emitted[offset : offset + 10_000]
        now = max(f.occurred_at for f in batch) + timedelta(hours=1, days=12 if number % 4 == 3 else 0)
        added += await _record(sessionmaker, world.a, batch, now=now)
        for fact in batch:
            counted.setdefault(fact.idempotency_key, landing(fact.occurred_at, now))
    assert added == 95_000

    expected: dict[str, Counter[str]] = {}
    for fact in facts:
        period, _ = counted[fact.idempotency_key]
        expected.setdefault(period, Counter())[fact.meter] += fact.quantity
    assert set(expected) == {"2026-09", "2026-10", "2026-11"}
    assert any(late for _, late in counted.values()) and not all(late for _, late in counted.values())
    for period, sums in expected.items():
        assert await _totals(sessionmaker, world.a, period) == dict(sums), period
    assert await _totals(sessionmaker, world.b, "2026-11") == {}


async def test_meters_aggregate_by_their_kind_and_break_down_by_dimension(
    sessionmaker: async_sessionmaker[AsyncSession], world: World
) -> None:
    at = datetime(2026, 11, 10, tzinfo=UTC)
    usage = [
        Usage("assets.active", 40, "assets-1", at, {}),
        Usage("assets.active", 42, "assets-2", at + timedelta(days=5), {}),
        Usage("assets.active", 41, "assets-3", at + timedelta(days=2), {}),  # reported late, not the last
        Usage("seats", 12, "seats-1", at, {}),
        Usage("seats", 15, "seats-2", at + timedelta(days=1), {}),
        Usage("seats", 9, "seats-3", at + timedelta(days=2), {}),
        Usage("sites.active", 1, "site-north-1", at, {"site": "north"}),
        Usage("sites.active", 1, "site-north-2", at + timedelta(days=1), {"site": "north"}),
        Usage("sites.active", 1, "site-south-1", at, {"site": "south"}),
        Usage("runs.started", 3, "runs-1", at, {"site": "north"}),
        Usage("runs.started", 2, "runs-2", at, {"site": "south"}),
        Usage("runs.started", 4, "runs-3", at, {"site": "south"}),
    ]
    assert await _record(sessionmaker, world.a, usage) == 12
    assert await _record(sessionmaker, world.a, usage) == 0  # a retried batch adds nothing
    assert await _totals(sessionmaker, world.a, "2026-11") == {
        "assets.active": 42,
        "seats": 15,
        "sites.active": 2,
        "runs.started": 9,
    }
    tenant = _tenant(world.a)
    async with sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant.tenant_id, ENGINE)
        service = UsageService(session, tenant)
        assert await service.breakdown("2026-11", "runs.started", "site") == [("north", 3), ("south", 6)]
        with pytest.raises(ValidationFailedError):
            await service.record([Usage("bogus", 1, "x", at)], now=NOW)
        with pytest.raises(ValidationFailedError):
            await service.record([Usage("seats", -1, "y", at)], now=NOW)
    # The other tenant sees none of it, even under the same keys.
    assert await _totals(sessionmaker, world.b, "2026-11") == {}
    assert await _record(sessionmaker, world.b, usage[:1]) == 1


@pytest.mark.postgres
async def test_usage_is_append_only_for_the_application(
    sessionmaker: async_sessionmaker[AsyncSession], world: World
) -> None:
    assert ON_POSTGRES
    await _record(sessionmaker, world.a, [Usage("seats", 3, f"k-{uuid.uuid4()}", NOW)])
    tenant = _tenant(world.a)
    for statement in ("UPDATE usage_records SET quantity = 0", "DELETE FROM usage_records"):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with sessionmaker() as session, session.begin():
                await bind_tenant(session, tenant.tenant_id, ENGINE)
                await session.execute(text(statement))
