"""Workflows reach the customer's systems through its outbound connections: an action step's
capability ``<key>.<capability>`` runs on a real Dramatiq worker, with the step's idempotency key,
and each call is on record with its run and step."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.support.vendor_fake import VendorFake, vendor_fake
from tests.support.workers import drain, running_worker
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
KEY = "cmms-key-5a6b7c8d9e"


@pytest.fixture
def vendor() -> Iterator[VendorFake]:
    with vendor_fake() as fake:
        yield fake


async def test_action_steps_call_connections_by_key_with_the_steps_idempotency_key(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: VendorFake
) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}"
    for body in (
        {
            "key": "cmms",
            "name": "CMMS",
            "type": "rest",
            "config": {"base_url": vendor.url, "auth": "api_key"},
            "secrets": {"api_key": KEY},
        },
        {"key": "crew", "name": "Crew chat", "type": "slack", "secrets": {"webhook_url": vendor.url + "/hooks/crew"}},
    ):
        r = await api.post(f"{base}/outbound-connections/", headers=auth(c.key), json=body)
        assert r.status_code == 201, r.text
    steps: list[dict[str, Any]] = [
        {
            "key": "work_order",
            "kind": "action",
            "capability": "cmms.request",
            "inputs": {"path": "/work-orders", "json": {"asset": "{{ event.subject }}", "priority": 1}},
            "next": "tell_crew",
        },
        {
            "key": "tell_crew",
            "kind": "action",
            "capability": "crew.notify",
            "inputs": {"text": "Work order opened for {{ event.subject }}", "severity": "critical"},
            "next": "missing",
        },
        {"key": "missing", "kind": "action", "capability": "nope.request", "inputs": {}},
    ]
    r = await api.post(
        f"{base}/workflows/",
        headers=auth(c.key),
        json={"key": "wo", "name": "Work order", "definition": {"steps": steps}},
    )
    assert r.status_code == 201, r.text
    started = await api.post(
        f"{base}/workflows/{r.json()['id']}/runs", headers=auth(c.key), json={"event": {"subject": "Press 4"}}
    )
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    with running_worker(app):
        drain(app)

    detail = (await api.get(f"{base}/runs/{run_id}", headers=auth(c.key))).json()
    by_key = {s["step_key"]: s for s in detail["steps"]}
    assert by_key["work_order"]["status"] == "succeeded", by_key
    assert by_key["work_order"]["output"]["body"]["echo"] == {"asset": "Press 4", "priority": 1}
    assert by_key["tell_crew"]["status"] == "succeeded"
    # An unknown connection is not worth retrying: a person is asked to do it by hand, told why.
    missing = by_key["missing"]
    assert missing["status"] == "waiting" and "no outbound connection with key nope" in missing["error"], missing
    assert missing["attempt"] == 1 and detail["run"]["status"] == "running"

    work_order, chat = vendor.api_requests()
    assert (work_order.path, work_order.headers["x-api-key"]) == ("/work-orders", KEY)
    assert work_order.headers["idempotency-key"] == f"andon:{run_id}:work_order"
    assert chat.path == "/hooks/crew" and chat.json()["text"] == "[CRITICAL] Work order opened for Press 4"

    connections = (await api.get(f"{base}/outbound-connections/", headers=auth(c.key))).json()["items"]
    cmms = next(x for x in connections if x["key"] == "cmms")
    calls = (await api.get(f"{base}/outbound-connections/{cmms['id']}/calls", headers=auth(c.key))).json()
    assert [(x["outcome"], x["run_id"], x["step_key"]) for x in calls] == [("ok", run_id, "work_order")]
    assert KEY not in str(calls)
