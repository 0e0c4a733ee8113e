"""The audit trail: admin changes and key events recorded with actor and before/after; the hash chain
and ``andon audit verify`` detect an edited, deleted or truncated entry and name it."""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import anyio
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.audit.service import verify
from andon.platform.config.settings import Settings
from andon.platform.db.engine import create_engine, create_sessionmaker
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


async def _owner_session(settings: Settings) -> tuple[Any, async_sessionmaker[AsyncSession]]:
    """Tampering is done as the database owner: the app role may not update or delete audit rows."""
    engine = create_engine(settings.database, url=settings.database.owner_url)
    return engine, create_sessionmaker(engine)


async def _run_verify(settings: Settings) -> tuple[int, str]:
    """The real command in its own process, as an operator would run it."""
    env = {
        **os.environ,
        "ANDON_DATABASE_URL": settings.database.url,
        "ANDON_DATABASE_ADMIN_URL": settings.database.admin_url,
    }
    done = await anyio.run_process([sys.executable, "-m", "andon", "audit", "verify"], env=env, check=False)
    return done.returncode, (done.stdout + done.stderr).decode()


async def test_changes_are_recorded_with_actor_and_before_after(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    url = f"/api/v1/customers/{c.customer_id}/sites/{c.site_id}"
    assert (await client.patch(url, json={"name": "Renamed"}, headers=auth(world.a.key))).status_code == 200
    trail = (await client.get(f"/api/v1/customers/{c.customer_id}/audit", headers=auth(c.key))).json()
    entry = trail[0]
    assert entry["action"] == "site.updated"
    assert entry["target_id"] == str(c.site_id)
    assert entry["before"]["name"] == f"{c.slug} plant" and entry["after"]["name"] == "Renamed"
    assert entry["actor"]["kind"] == "api_key" and entry["actor"]["org"] == "partner"
    assert entry["actor"]["acting_in_customer"] == str(c.customer_id)  # delegated partner action
    assert entry["prev_hash"] == trail[1]["hash"] and entry["seq"] == trail[1]["seq"] + 1


async def test_key_issue_and_revoke_are_audited_without_secrets(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/api-keys"
    issued = (await client.post(base, json={"name": "gateway", "roles": ["ingest"]}, headers=auth(c.key))).json()
    await client.delete(f"{base}/{issued['id']}", headers=auth(c.key))
    trail = (await client.get(f"/api/v1/customers/{c.customer_id}/audit", headers=auth(c.key))).json()
    assert [e["action"] for e in trail[:2]] == ["api_key.revoked", "api_key.issued"]
    assert trail[0]["before"]["revoked_at"] is None and trail[0]["after"]["revoked_at"] is not None
    raw = str(trail)
    assert issued["key"] not in raw and "key_hash" not in raw


async def test_verify_passes_then_names_an_edited_entry(settings: Settings, world: World) -> None:
    engine, maker = await _owner_session(settings)
    try:
        async with maker() as session:
            report = await verify(session)
        # platform: operator key + 2 partners; each partner: its key + its customer; each tenant: 5 nodes + key
        assert (report.ok, report.entries, report.chains) == (True, 3 + 2 * 2 + 2 * 6, 5)
        code, output = await _run_verify(settings)
        assert code == 0, output
        assert f"audit trail intact: {report.entries} entries in 5 chains" in output

        async with maker() as session, session.begin():
            victim = (
                await session.execute(
                    text("SELECT id, chain, seq FROM audit_entries WHERE action = 'site.created' ORDER BY seq LIMIT 1")
                )
            ).one()
            await session.execute(
                text("UPDATE audit_entries SET target_id = 'forged' WHERE id = :id"), {"id": victim.id}
            )
        code, output = await _run_verify(settings)
        assert code == 1
        assert f"chain={victim.chain} entry={uuid.UUID(str(victim.id))} seq={victim.seq}" in output
        assert "content does not match its hash: edited" in output
    finally:
        await engine.dispose()


async def test_verify_detects_deleted_and_truncated_entries(settings: Settings, world: World) -> None:
    engine, maker = await _owner_session(settings)
    chain = f"tenant:{world.a.customer.customer_id}"
    try:
        async with maker() as session, session.begin():
            await session.execute(text("DELETE FROM audit_entries WHERE chain = :c AND seq = 2"), {"c": chain})
        async with maker() as session:
            problems = (await verify(session)).problems
        assert [(p.chain, p.seq) for p in problems] == [(chain, 3)]
        assert problems[0].reason == "entry 2 is missing (next is 3): deleted"

        other = f"tenant:{world.b.customer.customer_id}"
        async with maker() as session, session.begin():
            last = (
                await session.execute(text("SELECT max(seq) FROM audit_entries WHERE chain = :c"), {"c": other})
            ).scalar_one()
            await session.execute(
                text("DELETE FROM audit_entries WHERE chain = :c AND seq = :s"), {"c": other, "s": last}
            )
        async with maker() as session:
            problems = (await verify(session)).problems
        truncated = [p for p in problems if p.chain == other]
        assert len(truncated) == 1 and "tail deleted" in truncated[0].reason
    finally:
        await engine.dispose()


async def test_concurrent_appends_keep_one_chain(
    client: AsyncTestClient[Any], world: World, settings: Settings
) -> None:
    import asyncio

    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/sites"
    results = await asyncio.gather(
        *(client.post(base, json={"name": f"Site {i}"}, headers=auth(c.key)) for i in range(10))
    )
    assert [r.status_code for r in results] == [201] * 10
    engine, maker = await _owner_session(settings)
    try:
        async with maker() as session:
            assert (await verify(session)).ok
    finally:
        await engine.dispose()
