"""The GraphQL adapter against a vendor fake: variables and the bearer token go out; GraphQL errors in
a 200, a malformed body and a server error come back as failures of the right kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import FAILED, INVALID
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.support.vendor_fake import Scripted, VendorFake, vendor_fake
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
TOKEN = "plm-token-0f1e2d3c4b5a"
QUERY = "query Part($id: ID!) { part(id: $id) { number revision } }"


@pytest.fixture
def vendor() -> Iterator[VendorFake]:
    with vendor_fake() as fake:
        yield fake


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


async def test_queries_go_out_with_variables_and_graphql_errors_fail_the_call(
    api: httpx.AsyncClient, world: World, vendor: VendorFake, calls: OutboundCalls
) -> None:
    c = world.a.customer
    r = await api.post(
        f"/api/v1/customers/{c.customer_id}/outbound-connections/",
        headers=auth(c.key),
        json={
            "key": "plm",
            "name": "PLM",
            "type": "graphql",
            "config": {"base_url": vendor.url, "auth": "bearer", "endpoint": "/api/graphql"},
            "secrets": {"token": TOKEN},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["capabilities"] == ["plm.query"]
    tenant = TenantContext(TenantId(c.customer_id), world.a.partner_id, ENGINE)
    inputs = {"query": QUERY, "variables": {"id": "P-100"}, "operation_name": "Part"}

    vendor.queue(Scripted(200, {"data": {"part": {"number": "P-100", "revision": "C"}}}))
    answer = await calls.call(tenant, "plm", "query", inputs, idempotency_key="g1")
    assert answer == {"data": {"part": {"number": "P-100", "revision": "C"}}}
    seen = vendor.api_requests()[-1]
    assert (seen.method, seen.path, seen.headers["authorization"]) == ("POST", "/api/graphql", f"Bearer {TOKEN}")
    assert seen.json() == {"query": QUERY, "variables": {"id": "P-100"}, "operationName": "Part"}

    for scripted, kind, words in [
        (
            Scripted(200, {"data": None, "errors": [{"message": "part P-100 is locked"}]}),
            FAILED,
            "part P-100 is locked",
        ),
        (Scripted(200, {"hello": "world"}), INVALID, "not a GraphQL result"),
        (Scripted(200, raw=b"<html>gateway</html>"), INVALID, "not JSON"),
        (Scripted(500, {"e": "boom"}), FAILED, "answered 500"),
    ]:
        vendor.queue(scripted)
        with pytest.raises(ConnectorError) as failed:
            await calls.call(tenant, "plm", "query", inputs, idempotency_key="g2")
        assert failed.value.kind == kind and words in str(failed.value), failed.value
