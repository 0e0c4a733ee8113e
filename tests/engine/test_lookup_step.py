"""The ``lookup`` step on a real worker: it reads through a tenant's outbound connection (a vendor's
API over a real socket), narrows the answer with JMESPath into ``steps.<key>``, routes a missing or
empty answer to ``on_empty``, and retries a flaky read without ever recording an effect."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.engine.models import Effect
from andon.platform.engine.repository import EffectRepository
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from tests.support.vendor_fake import Scripted, VendorFake, vendor_fake
from tests.support.workers import drain, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio


@pytest.fixture
def vendor() -> Iterator[VendorFake]:
    with vendor_fake() as fake:
        yield fake


def _base(tenant: Tenant) -> str:
    return f"/api/v1/customers/{tenant.customer_id}"


def history_flow(**lookup: Any) -> dict[str, Any]:
    """Read the asset's last five repairs; count them, or note that there are none."""
    return {
        "steps": [
            {
                "key": "history",
                "kind": "lookup",
                "capability": "cmms.request",
                "inputs": {"method": "GET", "path": "/assets/{{ event.assetid }}/history"},
                "select": "body.items[:5]",
                "on_empty": "first_time",
                "next": "count",
                **lookup,
            },
            {"key": "count", "kind": "set", "values": {"repairs": "size(steps.history)"}},
            {"key": "first_time", "kind": "set", "values": {"note": "'no repairs on record'"}},
        ]
    }


async def _connection(api: httpx.AsyncClient, tenant: Tenant, vendor: VendorFake) -> None:
    r = await api.post(
        f"{_base(tenant)}/outbound-connections/",
        headers=auth(tenant.key),
        json={"key": "cmms", "name": "CMMS", "type": "rest", "config": {"base_url": vendor.url + "/api"}},
    )
    assert r.status_code == 201, r.text


async def _workflow(api: httpx.AsyncClient, tenant: Tenant, definition: dict[str, Any]) -> str:
    r = await api.post(
        f"{_base(tenant)}/workflows/",
        headers=auth(tenant.key),
        json={"key": f"wf-{uuid.uuid4().hex[:6]}", "name": "History", "definition": definition},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _run_to_end(app: Litestar, api: httpx.AsyncClient, tenant: Tenant, workflow_id: str) -> dict[str, Any]:
    r = await api.post(
        f"{_base(tenant)}/workflows/{workflow_id}/runs", headers=auth(tenant.key), json={"event": {"assetid": "P-7"}}
    )
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    with running_worker(app):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            drain(app)
            detail: dict[str, Any] = (await api.get(f"{_base(tenant)}/runs/{run_id}", headers=auth(tenant.key))).json()
            if detail["run"]["status"] != "running":
                return detail
            await asyncio.sleep(0.05)
            await app.state.scheduler.fire_due()  # the retry timers
    raise AssertionError(f"the run did not end: {detail}")


def _steps(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step_key"]: s for s in detail["steps"]}


@asynccontextmanager
async def _effects(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> AsyncIterator[EffectRepository]:
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        ctx = await CustomerService(session, system).open_tenant(tenant.customer_id)
        yield EffectRepository(session, ctx)


async def test_a_lookup_reads_through_the_connection_and_selects_into_the_context(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: VendorFake
) -> None:
    c = world.a.customer
    await _connection(api, c, vendor)
    flow = await _workflow(api, c, history_flow())
    vendor.queue(Scripted(200, {"items": [{"wo": n} for n in range(7)], "total": 7}))
    detail = await _run_to_end(app, api, c, flow)
    assert detail["run"]["status"] == "succeeded", detail
    steps = _steps(detail)
    assert steps["history"]["output"] == [{"wo": n} for n in range(5)]
    assert detail["context"]["steps"]["history"] == [{"wo": n} for n in range(5)]
    assert steps["count"]["output"] == {"repairs": 5} and "first_time" not in steps
    [seen] = vendor.api_requests()
    assert (seen.method, seen.path) == ("GET", "/api/assets/P-7/history")


@pytest.mark.parametrize("answer", [Scripted(200, {"items": []}), Scripted(404, {"error": "no such asset"})])
async def test_an_empty_or_missing_answer_takes_on_empty(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: VendorFake, answer: Scripted
) -> None:
    c = world.a.customer
    await _connection(api, c, vendor)
    flow = await _workflow(api, c, history_flow())
    vendor.queue(answer)
    detail = await _run_to_end(app, api, c, flow)
    assert detail["run"]["status"] == "succeeded", detail
    steps = _steps(detail)
    assert steps["history"]["status"] == "succeeded" and steps["history"]["output"] in ([], None)
    assert steps["first_time"]["output"] == {"note": "no repairs on record"} and "count" not in steps
    assert len(vendor.api_requests()) == 1, "a 404 is an answer, not worth retrying"


async def test_without_on_empty_a_missing_answer_fails_the_step_at_once(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: VendorFake
) -> None:
    c = world.a.customer
    await _connection(api, c, vendor)
    definition = history_flow(on_empty=None)
    definition["steps"] = definition["steps"][:2]
    flow = await _workflow(api, c, definition)
    vendor.queue(Scripted(404, {"error": "no such asset"}))
    detail = await _run_to_end(app, api, c, flow)
    history = _steps(detail)["history"]
    assert detail["run"]["status"] == "failed" and (history["status"], history["error_kind"]) == ("failed", "not_found")
    assert history["attempt"] == 1 and len(vendor.api_requests()) == 1


async def test_a_flaky_read_is_retried_and_records_no_effect(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    vendor: VendorFake,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    c = world.a.customer
    await _connection(api, c, vendor)
    flow = await _workflow(api, c, history_flow(retry={"initial_seconds": 0.05, "max_attempts": 3}))
    vendor.queue(Scripted(503, {"error": "down"}), Scripted(503, {"error": "down"}), Scripted(200, {"items": [1, 2]}))
    detail = await _run_to_end(app, api, c, flow)
    assert detail["run"]["status"] == "succeeded", detail
    history = _steps(detail)["history"]
    assert (history["attempt"], history["output"]) == (3, [1, 2])
    assert _steps(detail)["count"]["output"] == {"repairs": 2}
    assert len(vendor.api_requests()) == 3
    async with _effects(sessionmaker, c) as effects:
        assert await effects.list(Effect.run_id == uuid.UUID(detail["run"]["id"])) == []


async def test_the_definition_is_checked(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    broken = history_flow(select="body.items[", capability="CMMS request")
    r = await api.post(f"{_base(c)}/workflows/check", headers=auth(c.key), json={"definition": broken})
    assert r.status_code == 200 and not r.json()["ok"]
    assert {e["field"] for e in r.json()["errors"]} == {"steps[0].capability"}
    broken = history_flow(select="body.items[")
    r = await api.post(
        f"{_base(c)}/workflows/", headers=auth(c.key), json={"key": "h", "name": "H", "definition": broken}
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["steps[0].select"]
    assert "JMESPath" in r.json()["errors"][0]["message"]
    fine = history_flow(on_empty="nowhere")
    r = await api.post(f"{_base(c)}/workflows/check", headers=auth(c.key), json={"definition": fine})
    assert "goes to 'nowhere'" in r.text
