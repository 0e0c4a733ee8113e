"""Second wall: on PostgreSQL, row-level security hides other tenants' rows even from a raw SELECT
with no WHERE clause, for the non-owner role the application connects as."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.db.base import tenant_owned_tables
from andon.platform.db.models_registry import load_all_models
from tests.tenants.factories import World

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def _rows(session: AsyncSession, table: str) -> list[str]:
    result = await session.execute(text(f"SELECT tenant_id FROM {table}"))  # noqa: S608 - fixed names
    return [str(r[0]) for r in result]


async def test_raw_select_sees_only_the_bound_tenant(
    sessionmaker: async_sessionmaker[AsyncSession], world: World
) -> None:
    load_all_models()
    tables = tenant_owned_tables()
    assert {"sites", "areas", "lines", "assets", "shift_calendars", "api_keys", "audit_entries"} <= set(tables)
    a, b = str(world.a.customer.customer_id), str(world.b.customer.customer_id)
    async with sessionmaker() as session:
        async with session.begin():
            role = (
                await session.execute(
                    text("SELECT usename, usesuper, usebypassrls FROM pg_user WHERE usename = current_user")
                )
            ).one()
        assert tuple(role) == ("andon_app", False, False)
        for tenant, other in ((a, b), (b, a)):
            async with session.begin():
                await session.execute(text("SELECT set_config('andon.tenant_id', :t, true)"), {"t": tenant})
                for table in tables:
                    seen = await _rows(session, table)
                    assert other not in seen, table
                    if table in ("sites", "areas", "lines", "assets", "shift_calendars", "api_keys"):
                        assert seen and set(seen) == {tenant}, table


async def test_no_scope_means_no_rows(sessionmaker: async_sessionmaker[AsyncSession], world: World) -> None:
    load_all_models()
    async with sessionmaker() as session, session.begin():
        for table in [*tenant_owned_tables(), "customers", "partners"]:
            count = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608
            assert count == 0, table


async def test_writing_into_another_tenant_is_refused(
    sessionmaker: async_sessionmaker[AsyncSession], world: World
) -> None:
    from sqlalchemy.exc import DBAPIError

    async with sessionmaker() as session:
        with pytest.raises(DBAPIError, match="row-level security"):
            async with session.begin():
                await session.execute(
                    text("SELECT set_config('andon.tenant_id', :t, true)"), {"t": str(world.a.customer.customer_id)}
                )
                await session.execute(
                    text(
                        "INSERT INTO sites (id, tenant_id, name, timezone, created_at, updated_at) "
                        "VALUES (gen_random_uuid(), :other, 'x', 'UTC', now(), now())"
                    ),
                    {"other": str(world.b.customer.customer_id)},
                )


async def test_audit_trail_is_append_only_for_the_app(
    sessionmaker: async_sessionmaker[AsyncSession], world: World
) -> None:
    from sqlalchemy.exc import DBAPIError

    async with sessionmaker() as session:
        for statement in ("UPDATE audit_entries SET action = 'x'", "DELETE FROM audit_entries"):
            with pytest.raises(DBAPIError, match="permission denied"):
                async with session.begin():
                    await session.execute(
                        text("SELECT set_config('andon.tenant_id', :t, true)"), {"t": str(world.a.customer.customer_id)}
                    )
                    await session.execute(text(statement))


async def test_a_partner_bound_to_a_foreign_tenant_sees_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], world: World
) -> None:
    """Even if application code bound partner A's transaction to partner B's customer, the policies
    check that the tenant belongs to the acting partner."""
    load_all_models()
    async with sessionmaker() as session, session.begin():
        await session.execute(text("SELECT set_config('andon.partner_id', :p, true)"), {"p": str(world.a.partner_id)})
        await session.execute(
            text("SELECT set_config('andon.tenant_id', :t, true)"), {"t": str(world.b.customer.customer_id)}
        )
        foreign = str(world.b.customer.customer_id)
        for table in ("sites", "areas", "lines", "assets", "shift_calendars"):
            assert await _rows(session, table) == [], table
        for table in ("api_keys", "audit_entries", "users"):  # the partner's own rows remain; B's do not
            assert foreign not in await _rows(session, table), table
        # Its own customer, bound correctly, is visible.
        await session.execute(
            text("SELECT set_config('andon.tenant_id', :t, true)"), {"t": str(world.a.customer.customer_id)}
        )
        assert set(await _rows(session, "sites")) == {str(world.a.customer.customer_id)}


async def test_operator_setting_does_not_open_tenant_rows(
    sessionmaker: async_sessionmaker[AsyncSession], world: World
) -> None:
    load_all_models()
    async with sessionmaker() as session, session.begin():
        await session.execute(text("SELECT set_config('andon.operator', 'on', true)"))
        for table in ("sites", "areas", "lines", "assets", "shift_calendars"):
            assert await _rows(session, table) == [], table
        # It does see partners and customers (names and status), which is its job.
        count = (await session.execute(text("SELECT count(*) FROM customers"))).scalar_one()
        assert count == 2
