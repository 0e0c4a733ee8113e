"""Fairness: one tenant's flood of runs takes at most its share of the workers' threads at a time,
and another tenant's run is served while the flood is still being worked through."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar

from andon.platform.config.settings import Settings
from andon.platform.workers.actors import start_worker
from tests.support.vendor_fake import VendorFake, vendor_fake
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
SHARE, THREADS, FLOOD = 2, 4, 24


@pytest.fixture
def vendor() -> Iterator[VendorFake]:
    with vendor_fake() as fake:
        fake.delay = 0.15
        yield fake


@pytest.fixture
def settings(settings: Settings) -> Settings:
    engine = settings.engine.model_copy(update={"tenant_concurrency": SHARE})
    return settings.model_copy(update={"engine": engine})


async def _workflow(api: httpx.AsyncClient, tenant: Tenant, url: str) -> str:
    step = {"key": "call", "kind": "action", "capability": "http.post", "inputs": {"url": url, "json": {}}}
    r = await api.post(
        f"/api/v1/customers/{tenant.customer_id}/workflows/",
        headers=auth(tenant.key),
        json={"key": "slow", "name": "Slow", "definition": {"steps": [step]}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _start(api: httpx.AsyncClient, tenant: Tenant, workflow_id: str) -> str:
    base = f"/api/v1/customers/{tenant.customer_id}"
    r = await api.post(f"{base}/workflows/{workflow_id}/runs", headers=auth(tenant.key), json={})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _statuses(api: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    r = await api.get(f"/api/v1/customers/{tenant.customer_id}/runs/", headers=auth(tenant.key), params={"limit": 100})
    return [run["status"] for run in r.json()["items"]]


async def test_a_flooding_tenant_gets_its_share_and_another_tenant_is_served_meanwhile(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: VendorFake
) -> None:
    a, b = world.a.customer, world.b.customer
    flood = await _workflow(api, a, vendor.url + "/a")
    single = await _workflow(api, b, vendor.url + "/b")
    for _ in range(FLOOD):
        await _start(api, a, flood)
    lone = await _start(api, b, single)

    worker = start_worker(app.state.broker, THREADS)
    try:
        b_runs: list[Any] = []

        async def b_done() -> bool:
            b_runs[:] = await _statuses(api, b)
            return b_runs == ["succeeded"]

        done = False
        for _ in range(200):
            if await b_done():
                done = True
                break
            await asyncio.sleep(0.05)
        assert done, f"tenant b's run {lone} never finished: {b_runs}"
        a_left = sum(1 for s in await _statuses(api, a) if s != "succeeded")
        # Without a share, four threads would take a's runs first and b's would wait behind them.
        assert a_left >= FLOOD // 2, f"b was served only after most of a's flood ({a_left} left)"
        assert await _eventually_all(api, a)
    finally:
        worker.stop()
    a_paths = [r for r in vendor.api_requests() if r.path == "/a"]
    assert len(a_paths) == FLOOD
    # Tenant a never had more than its share of calls in flight, with four threads to spare.
    assert vendor.most_in_flight <= SHARE + 1  # a's share, and b's one call


async def _eventually_all(api: httpx.AsyncClient, tenant: Tenant) -> bool:
    for _ in range(400):
        if await _statuses(api, tenant) == ["succeeded"] * FLOOD:
            return True
        await asyncio.sleep(0.05)
    return False
