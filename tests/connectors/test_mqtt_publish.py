"""The MQTT publish adapter against the local Mosquitto broker: a message lands on the topic under the
connection's prefix, a topic cannot climb out of it, and a guarded deployment refuses a private broker."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import INVALID
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
HOST, PORT = "127.0.0.1", 1883


@pytest.fixture
def broker() -> None:
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            return
    except OSError:
        pytest.skip(f"needs an MQTT broker (Mosquitto) on {HOST}:{PORT}")


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


async def test_messages_are_published_under_the_prefix(
    broker: None, api: httpx.AsyncClient, world: World, calls: OutboundCalls
) -> None:
    c = world.a.customer
    prefix = f"andon-test-{uuid.uuid4().hex[:10]}/plant"
    r = await api.post(
        f"/api/v1/customers/{c.customer_id}/outbound-connections/",
        headers=auth(c.key),
        json={
            "key": "edge",
            "name": "Edge broker",
            "type": "mqtt",
            "config": {"host": HOST, "port": PORT, "tls": False, "prefix": prefix},
        },
    )
    assert r.status_code == 201, r.text
    tenant = TenantContext(TenantId(c.customer_id), world.a.partner_id, ENGINE)
    async with aiomqtt.Client(HOST, PORT) as listener:
        await listener.subscribe(f"{prefix}/#", qos=1)
        answer = await calls.call(
            tenant, "edge", "publish", {"topic": "line3/andon", "payload": {"lamp": "red"}}, idempotency_key="m1"
        )
        assert answer == {"topic": f"{prefix}/line3/andon", "qos": 1}
        async with asyncio.timeout(5):
            message = await anext(aiter(listener.messages))
    assert str(message.topic) == f"{prefix}/line3/andon"
    assert isinstance(message.payload, bytes) and json.loads(message.payload) == {"lamp": "red"}

    with pytest.raises(ConnectorError) as climbing:
        await calls.call(tenant, "edge", "publish", {"topic": "../other/x", "payload": 1}, idempotency_key="m2")
    assert climbing.value.kind == INVALID


async def test_a_private_broker_is_refused_when_private_networks_are_not_allowed(
    broker: None,
    api: httpx.AsyncClient,
    world: World,
    app: Litestar,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    c = world.a.customer
    r = await api.post(
        f"/api/v1/customers/{c.customer_id}/outbound-connections/",
        headers=auth(c.key),
        json={
            "key": "edge",
            "name": "Edge",
            "type": "mqtt",
            "config": {"host": "localhost", "port": PORT, "tls": False},
        },
    )
    assert r.status_code == 201, r.text
    guarded = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=False)
    tenant = TenantContext(TenantId(c.customer_id), world.a.partner_id, ENGINE)
    with pytest.raises(ConnectorError) as refused:
        await guarded.call(tenant, "edge", "publish", {"topic": "t", "payload": 1}, idempotency_key="m3")
    assert refused.value.kind == INVALID and "not public" in str(refused.value)
