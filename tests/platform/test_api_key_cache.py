"""Verified API keys are trusted by the verifying process for a few seconds: a revocation made in
this process takes effect at once, one made elsewhere within the cache's lifetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.models import ApiKey
from andon.platform.auth.verified import VerifiedKeys
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _me(client: AsyncTestClient[Any], key: str) -> Any:
    return client.get("/api/v1/me", headers=auth(key))


async def _revoke_elsewhere(sessionmaker: async_sessionmaker[AsyncSession], key_id: Any) -> None:
    """As another process would: a plain UPDATE, which this process's ORM never sees."""
    async with sessionmaker() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT set_config('andon.auth_lookup', 'on', true)"))
        stmt = update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=datetime.now(UTC))
        await session.execute(stmt.execution_options(synchronize_session=False))


async def test_a_revocation_elsewhere_takes_effect_within_the_cache_lifetime(
    client: AsyncTestClient[Any], app: Litestar, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clock = Clock()
    app.state.verified_keys.clock = clock
    c = world.a.customer
    assert (await _me(client, c.key)).status_code == 200
    await _revoke_elsewhere(sessionmaker, c.key_id)
    clock.now += app.state.settings.security.api_key_cache_seconds - 0.5
    assert (await _me(client, c.key)).status_code == 200  # still trusted from the last lookup
    clock.now += 1
    refused = await _me(client, c.key)
    assert refused.status_code == 401 and refused.json()["detail"] == "invalid, expired or revoked API key"


async def test_a_revocation_in_this_process_takes_effect_at_once(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/api-keys"
    issued = (await client.post(base, json={"name": "gateway", "roles": ["ingest"]}, headers=auth(c.key))).json()
    events = {"Authorization": f"Bearer {issued['key']}", "content-type": "application/cloudevents+json"}
    body: dict[str, Any] = {"specversion": "1.0", "id": "e-1", "source": "s", "type": "dev.andon.machine.alarm.v1"}
    body["data"] = {"code": "E1", "message": "m"}
    assert (await client.post("/api/v1/events", headers=events, json=body)).status_code == 201
    assert (await client.delete(f"{base}/{issued['id']}", headers=auth(c.key))).status_code == 200
    assert (await client.post("/api/v1/events", headers=events, json={**body, "id": "e-2"})).status_code == 401


async def test_a_suspension_in_this_process_takes_effect_at_once(client: AsyncTestClient[Any], world: World) -> None:
    c, partner = world.a.customer, world.a
    assert (await _me(client, c.key)).status_code == 200
    r = await client.patch(
        f"/api/v1/customers/{c.customer_id}", json={"status": "suspended"}, headers=auth(partner.key)
    )
    assert r.status_code == 200, r.text
    refused = await _me(client, c.key)
    assert refused.status_code == 401 and "suspended" in refused.json()["detail"]


def _principal() -> Principal:
    return Principal(subject_kind=SubjectKind.API_KEY, subject_id=None, label="k", org_kind=OrgKind.CUSTOMER)


def test_entries_age_out_expire_with_their_key_and_can_be_turned_off() -> None:
    clock = Clock()
    cache = VerifiedKeys(5, clock=clock)
    now = datetime.now(UTC)
    cache.put("a", _principal(), "andon_a", None)
    cache.put("b", _principal(), "andon_b", now + timedelta(seconds=1))
    assert cache.get("a", now) is not None and cache.get("b", now) is not None
    assert cache.get("b", now + timedelta(seconds=1)) is None  # the key itself expired
    clock.now += 5
    assert cache.get("a", now) is None
    off = VerifiedKeys(0, clock=clock)
    off.put("a", _principal(), "andon_a", None)
    assert off.get("a", now) is None
