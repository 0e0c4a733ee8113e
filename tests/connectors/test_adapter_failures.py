"""Every domain adapter through its vendor's contract fake over a real socket, on the real call path
(a connection made through the API, ``OutboundCalls``): an OAuth2 token that expired early is renewed
once and the call retried; a timeout, 429 with Retry-After (seconds or an HTTP date), 5xx, a body that
is not JSON and JSON that is not what the API documents each fail with the kind the engine retries by,
and the next call goes through again."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import FAILED, INVALID, UNAVAILABLE
from tests.support.contracts.calling import connect, tenant_of
from tests.support.contracts.cmms import CmmsFake
from tests.support.contracts.crm import CrmFake
from tests.support.contracts.erp import ErpFake
from tests.support.contracts.qms import QmsFake
from tests.support.contracts.server import ContractFake, serve
from tests.support.contracts.servicenow import ServiceNowFake
from tests.support.contracts.supplier_portal import SupplierPortalFake
from tests.support.vendor_fake import Scripted
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio


def _erp() -> ContractFake:
    fake = ErpFake("oauth2")
    fake.batches[("M-100", "B1")] = "UNRESTRICTED"
    return fake


def _supplier_portal() -> ContractFake:
    fake = SupplierPortalFake("oauth2")
    fake.asns["ASN-1"] = {"asnNumber": "ASN-1", "status": "SHIPPED", "supplierId": "S1", "lines": []}
    return fake


@dataclass(frozen=True)
class Vendor:
    kind: str
    make: Callable[[], ContractFake]
    capability: str
    inputs: dict[str, Any]
    # A success in shape only: JSON that breaks what the vendor documents, and the output that says so.
    mismatched: Scripted
    wrong_output: str
    config: dict[str, Any] = field(default_factory=dict)


VENDORS = [
    Vendor(
        "cmms",
        lambda: CmmsFake("oauth2"),
        "create_work_order",
        {"title": "Spindle overheating", "asset_id": 17},
        Scripted(201, {"id": "WO-1", "status": "OPEN"}),
        "work_order_id",
    ),
    Vendor(
        "servicenow",
        lambda: ServiceNowFake("oauth2"),
        "create_ticket",
        {"short_description": "Line 3 stopped"},
        Scripted(201, {"result": {"number": "INC0010001", "state": "1"}}),
        "ticket_id",
    ),
    Vendor(
        "erp",
        _erp,
        "update_material_status",
        {"material": "M-100", "batch": "B1", "status": "BLOCKED"},
        Scripted(200, {"material": "M-100", "batch": "B1", "stockStatus": "BLOCKED", "changedAt": "yesterday"}),
        "changed_at",
        {"plant": "DE01"},
    ),
    Vendor(
        "crm",
        lambda: CrmFake("oauth2"),
        "create_case",
        {"subject": "Scratched housings"},
        Scripted(201, {"success": True, "errors": []}),
        "case_id",
    ),
    Vendor(
        "qms",
        lambda: QmsFake("oauth2"),
        "open_nonconformance",
        {"title": "Burrs on flange", "severity": "major"},
        Scripted(201, {"nonconformance": {"status": "OPEN"}}),
        "nonconformance_id",
    ),
    Vendor(
        "supplier_portal",
        _supplier_portal,
        "lookup_asn_status",
        {"asn_number": "ASN-1"},
        Scripted(200, {"asn": {"asnNumber": "ASN-1", "status": "SHIPPED", "supplierId": "S1", "lines": [{}]}}),
        "lines",
    ),
]


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


@pytest.mark.parametrize("vendor", VENDORS, ids=[v.kind for v in VENDORS])
async def test_failure_modes_come_back_as_the_kinds_the_engine_retries_by(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, vendor: Vendor
) -> None:
    tenant = tenant_of(world)
    with serve(vendor.make()) as fake:
        await connect(api, world, "sys", vendor.kind, fake, **vendor.config)
        sent = [0]

        async def call(within: float | None = None) -> Any:
            sent[0] += 1
            return await calls.call(
                tenant, "sys", vendor.capability, vendor.inputs, idempotency_key=f"k{sent[0]}", within=within
            )

        assert vendor.wrong_output in await call()
        assert fake.issued == 1

        # The token expired before the client expected: refused once, a new token, the same request again.
        fake.expire_tokens()
        assert vendor.wrong_output in await call()
        assert fake.issued == 2
        last, before = fake.api_requests()[-1], fake.api_requests()[-2]
        assert (before.method, before.path) == (last.method, last.path)
        assert (before.headers["authorization"], last.headers["authorization"]) == ("Bearer tok-1", "Bearer tok-2")

        in_two_minutes = formatdate(time.time() + 120, usegmt=True)
        cases: list[tuple[Scripted, str, list[str]]] = [
            (Scripted(200, {}, delay=0.8), UNAVAILABLE, ["did not answer within 0.3 s"]),
            (Scripted(429, {"error": "slow down"}, {"Retry-After": "7"}), FAILED, ["429", "wait 7 s"]),
            (Scripted(429, {"error": "slow down"}, {"Retry-After": in_two_minutes}), FAILED, ["429"]),
            (Scripted(503, {"error": "maintenance"}), UNAVAILABLE, ["503"]),
            (Scripted(500, {"error": "boom"}), FAILED, ["500"]),
            (Scripted(200, raw=b"<html>Service Temporarily Unavailable</html>"), INVALID, ["not JSON", "<html>"]),
            (vendor.mismatched, INVALID, ["not what its API documents", vendor.wrong_output]),
        ]
        for scripted, kind, words in cases:
            fake.fail_next(scripted)
            with pytest.raises(ConnectorError) as failed:
                await call(within=0.3 if scripted.delay else None)
            error = failed.value
            assert error.kind == kind and all(w in str(error) for w in words), (scripted, str(error))
            if scripted.status == 429 and scripted.headers["Retry-After"] == "7":
                assert error.retry_after == 7.0
            elif scripted.status == 429:
                assert error.retry_after is not None and 100 < error.retry_after <= 120
            else:
                assert error.retry_after is None
            # The system is well again: the next call goes through (and the circuit stays closed).
            assert vendor.wrong_output in await call()
        assert fake.issued == 2
