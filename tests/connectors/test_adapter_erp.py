"""The ERP adapter against the plant API's contract fake (OAuth2): a batch blocked, the open orders it
puts at risk read back typed, a quality hold placed once for a repeated idempotency key; a batch held
by another transaction is worth retrying, an unknown one is not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import FAILED, NOT_FOUND
from tests.support.contracts.calling import connect, tenant_of
from tests.support.contracts.erp import ErpFake
from tests.support.contracts.server import serve
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio


@pytest.fixture
def erp() -> Iterator[ErpFake]:
    with serve(ErpFake("oauth2", plant="DE01")) as fake:
        fake.batches[("M-100", "B1")] = "UNRESTRICTED"
        fake.orders.extend(
            [
                {"orderNumber": "SO-2", "customerId": "C9", "customerName": "Kessler", "material": "M-100",
                 "quantity": 40, "unit": "EA", "requestedDate": "2026-12-09", "status": "OPEN"},
                {"orderNumber": "SO-1", "customerId": "C7", "customerName": "Brandt", "material": "M-100",
                 "quantity": 12.5, "unit": "KG", "requestedDate": "2026-12-02", "status": "OPEN"},
                {"orderNumber": "SO-0", "customerId": "C7", "customerName": "Brandt", "material": "M-100",
                 "quantity": 1, "unit": "EA", "requestedDate": "2026-11-01", "status": "SHIPPED"},
            ]
        )  # fmt: skip
        yield fake


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


async def test_a_batch_is_blocked_its_open_orders_read_and_a_hold_placed_once(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, erp: ErpFake
) -> None:
    await connect(api, world, "sap", "erp", erp, plant="DE01")
    tenant = tenant_of(world)

    blocked = await calls.call(
        tenant,
        "sap",
        "update_material_status",
        {"material": "M-100", "batch": "B1", "status": "BLOCKED", "reason": "Porosity found at OP30"},
        idempotency_key="e1",
    )
    assert blocked["status"] == "BLOCKED" and blocked["changed_at"].startswith("20")
    assert erp.batches[("M-100", "B1")] == "BLOCKED"
    seen = erp.api_requests()[-1]
    assert (seen.method, seen.path) == ("PATCH", "/api/v1/plants/DE01/materials/M-100/batches/B1")
    assert seen.json() == {"stockStatus": "BLOCKED", "reasonText": "Porosity found at OP30"}
    assert seen.headers["authorization"] == "Bearer tok-1"

    orders = await calls.call(tenant, "sap", "lookup_open_orders", {"material": "M-100"}, idempotency_key="e2")
    assert orders == {
        "orders": [
            {"order_number": "SO-1", "customer_id": "C7", "customer_name": "Brandt", "quantity": 12.5, "unit": "KG",
             "requested_date": "2026-12-02"},
            {"order_number": "SO-2", "customer_id": "C9", "customer_name": "Kessler", "quantity": 40.0, "unit": "EA",
             "requested_date": "2026-12-09"},
        ],
        "total": 2,
    }  # fmt: skip
    assert erp.api_requests()[-1].path == "/api/v1/plants/DE01/orders?material=M-100&status=OPEN&limit=50"

    hold = {"material": "M-100", "batch": "B1", "quantity": 120, "reason": "Porosity"}
    first = await calls.call(tenant, "sap", "place_quality_hold", hold, idempotency_key="andon:r:hold")
    again = await calls.call(tenant, "sap", "place_quality_hold", hold, idempotency_key="andon:r:hold")
    assert first == again == {"hold_id": "QH-00001", "status": "ACTIVE"} and len(erp.holds) == 1
    assert erp.holds[0]["unit"] == "EA" and erp.holds[0]["quantity"] == 120  # the default unit, a number


async def test_a_locked_batch_is_retried_an_unknown_one_is_not(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, erp: ErpFake
) -> None:
    await connect(api, world, "sap", "erp", erp, plant="DE01")
    tenant = tenant_of(world)
    erp.locked.add(("M-100", "B1"))
    inputs = {"material": "M-100", "batch": "B1", "status": "QUALITY_INSPECTION"}
    with pytest.raises(ConnectorError) as locked:
        await calls.call(tenant, "sap", "update_material_status", inputs, idempotency_key="l1")
    assert locked.value.kind == FAILED and "being changed by another user" in str(locked.value)
    with pytest.raises(ConnectorError) as unknown:
        await calls.call(tenant, "sap", "update_material_status", {**inputs, "batch": "B9"}, idempotency_key="l2")
    assert unknown.value.kind == NOT_FOUND and "batch B9 of material M-100 does not exist" in str(unknown.value)


async def test_a_reorder_is_requested_once_with_the_quantity_as_a_number(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, erp: ErpFake
) -> None:
    await connect(api, world, "sap", "erp", erp, plant="DE01")
    tenant = tenant_of(world)
    reorder = {"material": "BRG-6204", "quantity": "4", "reason": "Spare parts shortage"}
    first = await calls.call(tenant, "sap", "create_purchase_requisition", reorder, idempotency_key="andon:r:reorder")
    again = await calls.call(tenant, "sap", "create_purchase_requisition", reorder, idempotency_key="andon:r:reorder")
    assert first == again == {"requisition_id": "PR-000001", "status": "OPEN"} and len(erp.requisitions) == 1
    sent = erp.api_requests()[-1]
    assert (sent.method, sent.path) == ("POST", "/api/v1/plants/DE01/purchase-requisitions")
    assert erp.requisitions[0]["quantity"] == 4 and erp.requisitions[0]["unit"] == "EA"
    with pytest.raises(ConnectorError) as refused:
        await calls.call(tenant, "sap", "create_purchase_requisition", {**reorder, "quantity": 0}, idempotency_key="x")
    assert "quantity" in str(refused.value)
