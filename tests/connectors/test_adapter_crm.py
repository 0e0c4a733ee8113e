"""The CRM adapter against a Salesforce-style contract fake: a case upserted by its external id (the
step's idempotency key), so a repeated step finds the case it opened; a 204 update; an account's orders
by SOQL, with the account id's pattern keeping anything else out of the query."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import FAILED, INVALID
from tests.support.contracts.calling import connect, tenant_of
from tests.support.contracts.crm import CrmFake
from tests.support.contracts.server import query_of, serve
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio
ACCOUNT = "001Dn00000AbCdEfGH"
SOQL = (
    "SELECT Id, OrderNumber, Status, EffectiveDate, TotalAmount FROM Order "
    "WHERE AccountId = '001Dn00000AbCdEfGH' ORDER BY EffectiveDate DESC LIMIT 20"
)


@pytest.fixture
def crm() -> Iterator[CrmFake]:
    with serve(CrmFake("oauth2")) as fake:
        fake.orders.extend(
            [
                {"Id": "801A", "AccountId": ACCOUNT, "OrderNumber": "00000100", "Status": "Activated",
                 "EffectiveDate": "2026-10-01", "TotalAmount": 1200.0},
                {"Id": "801B", "AccountId": ACCOUNT, "OrderNumber": "00000101", "Status": "Draft",
                 "EffectiveDate": "2026-11-20", "TotalAmount": None},
                {"Id": "801C", "AccountId": "001Dn00000ZZZZZZZZ", "OrderNumber": "00000102", "Status": "Draft",
                 "EffectiveDate": "2026-11-21", "TotalAmount": 5.0},
            ]
        )  # fmt: skip
        yield fake


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


async def test_cases_are_upserted_by_the_steps_key_updated_and_orders_looked_up(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, crm: CrmFake
) -> None:
    await connect(api, world, "sf", "crm", crm)
    tenant = tenant_of(world)
    inputs = {"subject": "Scratched housings", "priority": "High", "account_id": ACCOUNT}

    case = await calls.call(tenant, "sf", "create_case", inputs, idempotency_key="andon:r7:case")
    case_id = case["case_id"]
    assert case == {"case_id": case_id, "created": True, "url": f"{crm.url}/lightning/r/Case/{case_id}/view"}
    seen = crm.api_requests()[-1]
    assert (seen.method, seen.path) == ("PATCH", "/services/data/v59.0/sobjects/Case/Andon_Key__c/andon%3Ar7%3Acase")
    assert seen.json() == {"Subject": "Scratched housings", "Priority": "High", "AccountId": ACCOUNT, "Origin": "Andon"}
    again = await calls.call(tenant, "sf", "create_case", inputs, idempotency_key="andon:r7:case")
    assert again == {**case, "created": False} and len(crm.cases) == 1

    updated = await calls.call(
        tenant, "sf", "update_case", {"case_id": case_id, "status": "Escalated"}, idempotency_key="u1"
    )
    assert updated == {"case_id": case_id} and crm.cases[case_id]["Status"] == "Escalated"

    crm.locked_rows = 1
    with pytest.raises(ConnectorError) as locked:
        await calls.call(tenant, "sf", "update_case", {"case_id": case_id, "priority": "Low"}, idempotency_key="u2")
    assert locked.value.kind == FAILED and "unable to obtain exclusive access" in str(locked.value)

    orders = await calls.call(tenant, "sf", "lookup_customer_orders", {"account_id": ACCOUNT}, idempotency_key="q1")
    assert orders == {
        "orders": [
            {"order_id": "801B", "order_number": "00000101", "status": "Draft", "effective_date": "2026-11-20",
             "total_amount": None},
            {"order_id": "801A", "order_number": "00000100", "status": "Activated", "effective_date": "2026-10-01",
             "total_amount": 1200.0},
        ],
        "total": 2,
    }  # fmt: skip
    assert query_of(crm.api_requests()[-1]) == {"q": SOQL}

    sent = len(crm.api_requests())
    with pytest.raises(ConnectorError) as injected:
        await calls.call(
            tenant, "sf", "lookup_customer_orders", {"account_id": "x' OR Name != '"}, idempotency_key="q2"
        )
    assert injected.value.kind == INVALID and len(crm.api_requests()) == sent
    with pytest.raises(ConnectorError) as missing:
        await calls.call(tenant, "sf", "create_case", {"subject": ""}, idempotency_key="c3")
    assert missing.value.kind == INVALID
