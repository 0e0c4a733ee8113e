"""Making a connection to a contract fake through the API, and the tenant a call runs as."""

from __future__ import annotations

from typing import Any

import httpx

from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.support.contracts.server import ContractFake
from tests.tenants.factories import World, auth


def tenant_of(world: World) -> TenantContext:
    return TenantContext(
        tenant_id=TenantId(world.a.customer.customer_id), partner_id=world.a.partner_id, principal=ENGINE
    )


async def connect(
    api: httpx.AsyncClient,
    world: World,
    key: str,
    kind: str,
    fake: ContractFake,
    rate_per_second: int = 100,
    **config: Any,
) -> dict[str, Any]:
    """A connection of type ``kind`` named ``key`` in tenant a, with the credentials ``fake`` accepts
    (and a rate limit above what a test sends)."""
    r = await api.post(
        f"/api/v1/customers/{world.a.customer.customer_id}/outbound-connections/",
        headers=auth(world.a.customer.key),
        json={
            "key": key,
            "name": key.upper(),
            "type": kind,
            "config": fake.config(**config),
            "secrets": fake.credentials(),
            "rate_per_second": rate_per_second,
        },
    )
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made
