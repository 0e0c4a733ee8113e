"""The QMS adapter against its contract fake (API key): a nonconformance recorded once for a repeated
idempotency key, a CAPA opened and linked to it; the QMS's field errors come back with the field."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import INVALID
from tests.support.contracts.calling import connect, tenant_of
from tests.support.contracts.qms import QmsFake
from tests.support.contracts.server import serve
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio


@pytest.fixture
def qms() -> Iterator[QmsFake]:
    with serve(QmsFake("api_key")) as fake:
        yield fake


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


async def test_a_nonconformance_is_recorded_once_and_a_capa_opened_on_it(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, qms: QmsFake
) -> None:
    await connect(api, world, "quality", "qms", qms)
    tenant = tenant_of(world)
    inputs = {
        "title": "Burrs on flange",
        "severity": "major",
        "part_number": "FL-220",
        "lot_number": "L2611",
        "quantity_affected": 36,
        "detected_at": "2026-11-26T05:40:00+01:00",
    }
    nc = await calls.call(tenant, "quality", "open_nonconformance", inputs, idempotency_key="andon:r:nc")
    assert nc == {"nonconformance_id": "NC-000001", "status": "OPEN", "url": f"{qms.url}/nc/NC-000001"}
    again = await calls.call(tenant, "quality", "open_nonconformance", inputs, idempotency_key="andon:r:nc")
    assert again == nc and len(qms.nonconformances) == 1
    seen = qms.api_requests()[-1]
    assert seen.headers["x-api-key"] == qms.api_key
    assert seen.json() == {
        "title": "Burrs on flange",
        "severity": "major",
        "category": "product",
        "source": "production",
        "partNumber": "FL-220",
        "lotNumber": "L2611",
        "quantityAffected": 36,
        "detectedAt": "2026-11-26T05:40:00+01:00",
    }

    capa = await calls.call(
        tenant,
        "quality",
        "open_capa",
        {
            "title": "Deburring",
            "problem_statement": "Burrs",
            "nonconformance_ids": ["NC-000001"],
            "due_date": "2026-12-15",
        },
        idempotency_key="andon:r:capa",
    )
    assert capa == {"capa_id": "CAPA-00001", "status": "INITIATED", "due_date": "2026-12-15"}
    assert qms.capas["CAPA-00001"]["nonconformanceIds"] == ["NC-000001"]
    assert qms.capas["CAPA-00001"]["priority"] == "medium"

    with pytest.raises(ConnectorError) as unknown:
        await calls.call(
            tenant,
            "quality",
            "open_capa",
            {"title": "x", "problem_statement": "y", "nonconformance_ids": ["NC-999999"]},
            idempotency_key="andon:r:capa2",
        )
    assert unknown.value.kind == INVALID and "nonconformanceIds: unknown nonconformance NC-999999" in str(unknown.value)
