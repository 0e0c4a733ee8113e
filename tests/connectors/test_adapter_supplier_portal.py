"""The supplier portal adapter against its contract fake (API key): a supplier messaged once for a
repeated idempotency key, an ASN's status and lines read typed; an unknown supplier or ASN is
``not_found`` with the portal's words."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import NOT_FOUND
from tests.support.contracts.calling import connect, tenant_of
from tests.support.contracts.server import serve
from tests.support.contracts.supplier_portal import SupplierPortalFake
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio


@pytest.fixture
def portal() -> Iterator[SupplierPortalFake]:
    with serve(SupplierPortalFake("api_key")) as fake:
        fake.suppliers.add("SUP-0042")
        fake.asns["ASN-7781"] = {
            "asnNumber": "ASN-7781",
            "status": "IN_TRANSIT",
            "supplierId": "SUP-0042",
            "shipDate": "2026-11-24",
            "expectedArrival": "2026-11-27T09:00:00Z",
            "carrier": "DHL",
            "trackingNumber": "JD014600006281",
            "lines": [{"lineNumber": 1, "partNumber": "FL-220", "quantity": 500, "lot": "L2611"}],
        }
        yield fake


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


async def test_a_supplier_is_messaged_once_and_an_asn_read(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, portal: SupplierPortalFake
) -> None:
    await connect(api, world, "suppliers", "supplier_portal", portal)
    tenant = tenant_of(world)
    inputs = {
        "supplier_id": "SUP-0042",
        "subject": "Lot L2611: burrs on flanges",
        "body": "36 of 500 parts rejected at incoming inspection.",
        "category": "quality",
        "reference": "NC-000001",
        "acknowledgement_required": True,
    }
    sent = await calls.call(tenant, "suppliers", "message_supplier", inputs, idempotency_key="andon:r:msg")
    assert sent["message_id"] == "msg_000001" and sent["status"] == "SENT" and sent["sent_at"]
    again = await calls.call(tenant, "suppliers", "message_supplier", inputs, idempotency_key="andon:r:msg")
    assert again == sent and len(portal.messages) == 1
    seen = portal.api_requests()[-1]
    assert seen.path == "/api/v1/suppliers/SUP-0042/messages"
    assert seen.json()["requestAcknowledgement"] is True and seen.json()["reference"] == "NC-000001"

    asn = await calls.call(tenant, "suppliers", "lookup_asn_status", {"asn_number": "ASN-7781"}, idempotency_key="a1")
    assert asn == {
        "asn_number": "ASN-7781",
        "status": "IN_TRANSIT",
        "supplier_id": "SUP-0042",
        "expected_arrival": "2026-11-27T09:00:00Z",
        "tracking_number": "JD014600006281",
        "lines": [{"line": 1, "part_number": "FL-220", "quantity": 500.0, "lot": "L2611"}],
    }

    for capability, bad, words in [
        ("message_supplier", {**inputs, "supplier_id": "SUP-9"}, "supplier SUP-9 is not connected"),
        ("lookup_asn_status", {"asn_number": "ASN-1"}, "ASN ASN-1 not found"),
    ]:
        with pytest.raises(ConnectorError) as missing:
            await calls.call(tenant, "suppliers", capability, bad, idempotency_key="m2")
        assert missing.value.kind == NOT_FOUND and words in str(missing.value)
