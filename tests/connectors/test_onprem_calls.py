"""Calls on systems inside the plant (outbound connections marked ``relay_target``) go through the
customer's connected relay agent, which reaches the plant's private address that Andon's servers may
not; from the same process (``andon dev``) or from a worker through Redis. Without an agent, or for
another customer, the call fails as unavailable and the system sees nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.onprem.calls import RedisRelayCalls, RelayCalls
from andon.connectors.onprem.links import NOT_CONNECTED
from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.config.settings import Settings
from andon.platform.engine.capabilities import NOT_FOUND, UNAVAILABLE
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.connectors.test_onprem_relay import (  # noqa: F401 - fixtures
    MakeAgent,
    _true,
    agents,
    eventually,
    relay_connection,
    relay_url,
)
from tests.support.redis_server import purge_namespace
from tests.support.vendor_fake import Scripted, VendorFake, vendor_fake
from tests.tenants.factories import Org, World, auth

pytestmark = pytest.mark.anyio
SECRET = "sk_live_plant_Zq8VtY4nW2pL6sR1"


@pytest.fixture
def vendor() -> Iterator[VendorFake]:
    with vendor_fake() as fake:
        yield fake


@pytest.fixture(params=["in_process", "redis"])
async def calls(
    request: pytest.FixtureRequest, app: Litestar, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[OutboundCalls]:
    """Andon's servers as a step sees them: private addresses refused, relay targets through the agent."""
    relay: RelayCalls
    if request.param == "redis":
        if not settings.redis.url:
            pytest.skip("needs ANDON_REDIS_URL: the worker reaches the agent's web process through Redis")
        relay = RedisRelayCalls(settings.redis.url, settings.redis.namespace, app.state.secretbox)
    else:
        relay = app.state.onprem.calls
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=False, relay=relay)
    yield made
    await made.egress.close()
    if isinstance(relay, RedisRelayCalls):
        await relay.redis.aclose()
        purge_namespace(settings.redis.url, settings.redis.namespace)


def _tenant(org: Org) -> TenantContext:
    return TenantContext(tenant_id=TenantId(org.customer.customer_id), partner_id=org.partner_id, principal=ENGINE)


async def _plant_system(api: httpx.AsyncClient, org: Org, vendor: VendorFake) -> None:
    r = await api.post(
        f"/api/v1/customers/{org.customer.customer_id}/outbound-connections/",
        headers=auth(org.customer.key),
        json={
            "key": "mes",
            "name": "MES",
            "type": "rest",
            "config": {"base_url": vendor.url + "/api", "auth": "api_key"},
            "secrets": {"api_key": SECRET},
            "relay_target": True,
        },
    )
    assert r.status_code == 201, r.text


async def _unavailable(calls: OutboundCalls, org: Org) -> str:
    with pytest.raises(ConnectorError) as refused:
        await calls.call(_tenant(org), "mes", "request", {"path": "/orders"}, idempotency_key="k0", within=1)
    assert refused.value.kind == UNAVAILABLE
    return str(refused.value)


async def test_a_plant_system_is_called_through_the_customers_agent_only(
    api: httpx.AsyncClient,
    world: World,
    vendor: VendorFake,
    agents: MakeAgent,  # noqa: F811 - the fixture imported above
    calls: OutboundCalls,
) -> None:
    await _plant_system(api, world.a, vendor)
    await _plant_system(api, world.b, vendor)
    connection = await relay_connection(api, world.a.customer)

    # No agent yet: in one process that is known at once; through Redis, no web process answers in time.
    expected = "did not answer" if isinstance(calls.relay, RedisRelayCalls) else NOT_CONNECTED
    assert expected in await _unavailable(calls, world.a)
    assert vendor.api_requests() == []

    agent = await agents(connection["secret"])
    await eventually(lambda: _true(agent.forwarder.connected), "the agent to connect")
    answer: Any = await calls.call(
        _tenant(world.a),
        "mes",
        "request",
        {"method": "POST", "path": "/orders", "json": {"order": 7}},
        idempotency_key="andon:run:s1",
    )
    assert answer == {"status": 200, "body": {"ok": True, "echo": {"order": 7}}}
    seen = vendor.api_requests()[-1]
    # The agent used the connection's own settings and secret, and the step's idempotency key.
    assert (seen.method, seen.path) == ("POST", "/api/orders")
    assert seen.headers["idempotency-key"] == "andon:run:s1"
    assert SECRET in seen.headers.values()
    assert agent.forwarder.calls == 1

    # The plant system's own answer keeps its kind.
    vendor.queue(Scripted(404, {"error": "no such order"}))
    with pytest.raises(ConnectorError) as missing:
        await calls.call(_tenant(world.a), "mes", "request", {"path": "/orders/9"}, idempotency_key="k2")
    assert missing.value.kind == NOT_FOUND

    # The other customer has the same key, but no agent: A's agent never runs B's calls.
    before = len(vendor.api_requests())
    assert "relay" in await _unavailable(calls, world.b)
    assert len(vendor.api_requests()) == before
    assert agent.forwarder.calls == 2
