"""The CMMS adapter against the work-order API's contract fake: a work order opened from typed inputs
(the vendor's field names and types, optional fields left out), opened once for a repeated idempotency
key, read back, an asset's history listed; the vendor's own errors mapped to kinds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import FAILED, INVALID, NOT_FOUND
from tests.support.contracts.calling import connect, tenant_of
from tests.support.contracts.cmms import CmmsFake
from tests.support.contracts.server import serve
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio


@pytest.fixture
def cmms() -> Iterator[CmmsFake]:
    with serve(CmmsFake("bearer")) as fake:
        yield fake


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


async def test_work_orders_are_opened_once_read_back_and_listed_per_asset(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, cmms: CmmsFake
) -> None:
    made = await connect(api, world, "maint", "cmms", cmms)
    assert made["capabilities"] == ["maint.create_work_order", "maint.get_work_order", "maint.lookup_asset_history"]
    tenant = tenant_of(world)
    inputs = {"title": "Spindle overheating", "asset_id": 17, "priority": "HIGH", "due_date": "2026-12-01T08:00:00Z"}

    opened = await calls.call(tenant, "maint", "create_work_order", inputs, idempotency_key="andon:r1:wo")
    assert opened == {"work_order_id": 90001, "number": 1, "status": "OPEN", "url": f"{cmms.url}/workorders/90001"}
    seen = cmms.api_requests()[-1]
    assert (seen.method, seen.path) == ("POST", "/v1/workorders")
    assert seen.headers["authorization"] == f"Bearer {cmms.bearer}"
    assert seen.headers["idempotency-key"] == "andon:r1:wo"
    # The vendor's names and types; optional inputs not given are left out, not sent as null.
    assert seen.json() == {
        "title": "Spindle overheating",
        "assetId": 17,
        "priority": "HIGH",
        "dueDate": "2026-12-01T08:00:00Z",
        "categories": ["Corrective"],
    }

    # The step ran again (a crash, a retry): the vendor replays its answer, one work order exists.
    again = await calls.call(tenant, "maint", "create_work_order", inputs, idempotency_key="andon:r1:wo")
    assert again == opened and len(cmms.work_orders) == 1
    await calls.call(tenant, "maint", "create_work_order", {"title": "Guard", "asset_id": 17}, idempotency_key="k2")
    await calls.call(tenant, "maint", "create_work_order", {"title": "Belt", "asset_id": 18}, idempotency_key="k3")

    read = await calls.call(tenant, "maint", "get_work_order", {"work_order_id": 90001}, idempotency_key="k4")
    assert read == {
        "work_order_id": 90001,
        "title": "Spindle overheating",
        "status": "OPEN",
        "priority": "HIGH",
        "asset_id": 17,
        "completed_at": None,
    }
    history = await calls.call(
        tenant, "maint", "lookup_asset_history", {"asset_id": 17, "limit": 1}, idempotency_key="k5"
    )
    assert [w["work_order_id"] for w in history["work_orders"]] == [90002] and history["more"] is True
    assert cmms.api_requests()[-1].path == "/v1/workorders?assetId=17&limit=1"


async def test_the_vendors_errors_become_kinds_and_bad_inputs_never_leave(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, cmms: CmmsFake
) -> None:
    await connect(api, world, "maint", "cmms", cmms)
    tenant = tenant_of(world)

    with pytest.raises(ConnectorError) as missing:
        await calls.call(tenant, "maint", "get_work_order", {"work_order_id": 5}, idempotency_key="e1")
    assert missing.value.kind == NOT_FOUND and "work order 5 not found" in str(missing.value)

    cmms.locked_assets.add(17)  # a lockout: worth retrying later
    with pytest.raises(ConnectorError) as locked:
        await calls.call(tenant, "maint", "create_work_order", {"title": "x", "asset_id": 17}, idempotency_key="e2")
    assert locked.value.kind == FAILED and "asset 17 is locked out" in str(locked.value)

    sent = len(cmms.api_requests())
    for bad in ({"title": "x", "asset_id": "seventeen"}, {"title": "x", "asset_id": 1, "priority": "URGENT"}, {}):
        with pytest.raises(ConnectorError) as refused:
            await calls.call(tenant, "maint", "create_work_order", bad, idempotency_key="e3")
        assert refused.value.kind == INVALID and str(refused.value).startswith("inputs:")
    assert len(cmms.api_requests()) == sent

    # Wrong credentials: a clear "forbidden", the token never in the message.
    cmms.bearer = "rotated-token-Q7"
    with pytest.raises(ConnectorError) as refused_key:
        await calls.call(tenant, "maint", "get_work_order", {"work_order_id": 1}, idempotency_key="e4")
    assert refused_key.value.kind == "forbidden" and "vendor-bearer" not in str(refused_key.value)
