"""API keys: shown once, stored hashed, prefix visible, expiry, revocation, last use, no escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.keys import hash_key
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


async def test_key_is_shown_once_and_stored_hashed(
    client: AsyncTestClient[Any], world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/api-keys"
    r = await client.post(base, json={"name": "line gateway", "roles": ["ingest"]}, headers=auth(c.key))
    assert r.status_code == 201
    issued = r.json()
    key = issued["key"]
    assert key.startswith(issued["prefix"] + "_") and issued["prefix"].startswith("andon_")
    assert "shown only once" in issued["notice"]

    listed = (await client.get(base, headers=auth(c.key))).json()["items"]
    fetched = (await client.get(f"{base}/{issued['id']}", headers=auth(c.key))).json()
    assert {k["prefix"] for k in listed} >= {issued["prefix"]}
    for shown in (*listed, fetched):
        assert "key" not in shown and "key_hash" not in shown

    async with sessionmaker() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT set_config('andon.tenant_id', :t, true)"), {"t": str(c.customer_id)})
        row = (
            (await session.execute(text("SELECT * FROM api_keys WHERE prefix = :p"), {"p": issued["prefix"]}))
            .mappings()
            .one()
        )
    assert key not in [str(v) for v in row.values()]
    assert row["key_hash"] == hash_key(key)

    # The new key works, with exactly its role's reach: read plant, nothing else.
    assert (await client.get(f"/api/v1/customers/{c.customer_id}/sites", headers=auth(key))).status_code == 200
    assert (
        await client.post(f"/api/v1/customers/{c.customer_id}/sites", json={"name": "x"}, headers=auth(key))
    ).status_code == 403


async def test_revoked_and_expired_keys_are_refused(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/api-keys"
    issued = (await client.post(base, json={"name": "temp", "roles": ["ingest"]}, headers=auth(c.key))).json()
    probe = f"/api/v1/customers/{c.customer_id}/sites"
    assert (await client.get(probe, headers=auth(issued["key"]))).status_code == 200
    revoked = await client.delete(f"{base}/{issued['id']}", headers=auth(c.key))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    r = await client.get(probe, headers=auth(issued["key"]))
    assert r.status_code == 401 and r.json()["detail"] == "invalid, expired or revoked API key"

    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    short = (
        await client.post(base, json={"name": "short", "roles": ["ingest"], "expires_at": soon}, headers=auth(c.key))
    ).json()
    assert (await client.get(probe, headers=auth(short["key"]))).status_code == 200
    import asyncio

    await asyncio.sleep(1.1)
    assert (await client.get(probe, headers=auth(short["key"]))).status_code == 401

    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = await client.post(base, json={"name": "past", "roles": ["ingest"], "expires_at": past}, headers=auth(c.key))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "expires_at"


@pytest.mark.parametrize("header", ["Bearer andon_zzzzzzzzzz_wrong", "Bearer garbage", "Basic dXNlcjpwYXNz", "Bearer"])
async def test_malformed_or_unknown_keys_are_401(client: AsyncTestClient[Any], world: World, header: str) -> None:
    r = await client.get("/api/v1/customers", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_tampered_secret_with_a_real_prefix_is_refused(client: AsyncTestClient[Any], world: World) -> None:
    prefix = "_".join(world.a.key.split("_")[:2])
    r = await client.get("/api/v1/customers", headers=auth(prefix + "_" + "A" * 43))
    assert r.status_code == 401


async def test_last_used_is_recorded(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/api-keys"
    assert (await client.get(f"{base}/{c.key_id}", headers=auth(world.a.key))).json()["last_used_at"] is None
    await client.get(f"/api/v1/customers/{c.customer_id}", headers=auth(c.key))
    used = (await client.get(f"{base}/{c.key_id}", headers=auth(world.a.key))).json()["last_used_at"]
    assert used is not None
    assert abs(datetime.fromisoformat(used) - datetime.now(UTC)) < timedelta(seconds=30)


async def test_roles_cannot_escalate_or_cross_node_kinds(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/api-keys"
    cases = {
        "partner_admin": "granted at partner level, not customer",
        "platform_operator": "granted at platform level, not customer",
        "superuser": "unknown role 'superuser'",
    }
    for role, message in cases.items():
        r = await client.post(base, json={"name": "x", "roles": [role]}, headers=auth(c.key))
        assert r.status_code == 422, role
        assert message in r.json()["detail"]
    # A least-privilege key cannot mint itself a wider one.
    ingest = (await client.post(base, json={"name": "i", "roles": ["ingest"]}, headers=auth(c.key))).json()["key"]
    assert (
        await client.post(base, json={"name": "y", "roles": ["customer_admin"]}, headers=auth(ingest))
    ).status_code == 403
    # A partner engineer (partner node) cannot issue a partner_admin key for its own node.
    eng = (
        await client.post(
            "/api/v1/api-keys", json={"name": "e", "roles": ["partner_engineer"]}, headers=auth(world.a.key)
        )
    ).json()["key"]
    assert (
        await client.post("/api/v1/api-keys", json={"name": "z", "roles": ["partner_admin"]}, headers=auth(eng))
    ).status_code == 403


async def test_operator_bootstraps_a_partner(client: AsyncTestClient[Any], world: World) -> None:
    op = auth(world.operator_key)
    partner = await client.post("/api/v1/partners", json={"slug": "charlie", "name": "Charlie MSP"}, headers=op)
    assert partner.status_code == 201
    pid = partner.json()["id"]
    # Customers are the partner's to onboard, not the operator's.
    r = await client.post("/api/v1/customers", json={"slug": "charlie-co", "name": "C", "partner_id": pid}, headers=op)
    assert r.status_code == 403
    issued = await client.post(
        f"/api/v1/partners/{pid}/api-keys", json={"name": "first", "roles": ["partner_admin"]}, headers=op
    )
    assert issued.status_code == 201
    charlie = auth(issued.json()["key"])
    customer = await client.post("/api/v1/customers", json={"slug": "charlie-co", "name": "C"}, headers=charlie)
    assert customer.status_code == 201 and customer.json()["partner_id"] == pid
    # The operator reads customers but has no plant access without delegation.
    r = await client.get(f"/api/v1/customers/{customer.json()['id']}/sites", headers=op)
    assert r.status_code == 403
    # Another partner cannot reach this partner's keys.
    r = await client.get(f"/api/v1/partners/{pid}/api-keys", headers=auth(world.a.key))
    assert r.status_code == 404
    platform_keys = (await client.get("/api/v1/api-keys", headers=op)).json()["items"]
    assert [k["org_kind"] for k in platform_keys] == ["platform"]
