"""CloudEvents over HTTP, as the official CloudEvents SDK sends them: structured, binary and batch.

Each event is stored once per (tenant, source, id), enriched with the plant it names, handed to the
workers through the outbox, and processed once however often the broker delivers it; nothing is
stored for a refused request, and no tenant sees another's events."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from litestar import Litestar

from tests.support.workers import drain, relay_all, running_worker
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"


def _event(event_id: str, *, data: dict[str, Any] | None = None, **attributes: Any) -> CloudEvent:
    return CloudEvent(
        {
            "id": event_id,
            "source": "urn:plc:press-line",
            "type": ALARM,
            "specversion": "1.0",
            "datacontenttype": "application/json",
            **attributes,
        },
        data if data is not None else {"code": "E42", "message": "Over temperature", "value": 96.5},
    )


async def _post(api: httpx.AsyncClient, key: str, message: Any) -> httpx.Response:
    return await api.post("/api/v1/events", headers={**auth(key), **message.headers}, content=message.body)


async def _batch(api: httpx.AsyncClient, key: str, events: list[CloudEvent]) -> httpx.Response:
    body = "[" + ",".join(JSONFormat().write(e).decode() for e in events) + "]"
    headers = {**auth(key), "content-type": "application/cloudevents-batch+json"}
    return await api.post("/api/v1/events", headers=headers, content=body)


async def _listed(api: httpx.AsyncClient, key: str, **params: Any) -> dict[str, Any]:
    r = await api.get("/api/v1/events", headers=auth(key), params=params)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_three_modes_store_each_event_once_and_enrich_it(api: httpx.AsyncClient, world: World) -> None:
    key = world.a.customer.key
    structured = await _post(api, key, to_structured_event(_event("s-1", assetid="alpha-customer-P", severity="high")))
    assert structured.status_code == 201, structured.text
    assert structured.json()["duplicate"] is False and structured.json()["event_id"] == "s-1"
    binary = await _post(api, key, to_binary_event(_event("b-1", siteid="alpha-customer-S", dedupkey="P-E42")))
    assert binary.status_code == 201, binary.text
    batch = await _batch(api, key, [_event("m-1"), _event("m-2"), _event("s-1")])
    assert batch.status_code == 201, batch.text
    assert (batch.json()["new"], batch.json()["duplicates"]) == (2, 1)
    assert batch.json()["accepted"][2]["id"] == structured.json()["id"]  # the original acceptance

    again = await _post(api, key, to_structured_event(_event("s-1", assetid="alpha-customer-P")))
    assert again.status_code == 200 and again.json()["id"] == structured.json()["id"] and again.json()["duplicate"]
    listed = await _listed(api, key, limit=50)
    assert listed["total"] == 4 and sorted(e["event_id"] for e in listed["items"]) == ["b-1", "m-1", "m-2", "s-1"]

    first = next(e for e in listed["items"] if e["event_id"] == "s-1")
    assert first["asset_id"] == str(world.a.customer.asset_id) and first["line_id"] == str(world.a.customer.line_id)
    assert first["site_id"] == str(world.a.customer.site_id) and first["severity"] == "high"
    assert first["data"]["value"] == 96.5 and first["channel"] == "http" and first["status"] == "accepted"
    by_site = next(e for e in listed["items"] if e["event_id"] == "b-1")
    assert by_site["site_id"] == str(world.a.customer.site_id) and by_site["asset_id"] is None
    assert by_site["dedup_key"] == "P-E42"
    assert (await _listed(api, key, site_id=str(world.a.customer.site_id)))["total"] == 2
    assert (await _listed(api, key, type="dev.andon.downtime.started.v1"))["total"] == 0
    assert (await _listed(api, key, source="urn:plc:press-line", limit=1))["total"] == 4


async def test_refusals_name_the_field_and_store_nothing(api: httpx.AsyncClient, world: World) -> None:
    key = world.a.customer.key
    cases: list[tuple[Any, str]] = [
        (to_structured_event(_event("x-1", data={"code": "E1"})), "data.message"),
        (to_structured_event(_event("x-2", data={"code": "E1", "message": "m", "state": "melting"})), "data.state"),
        (to_structured_event(_event("x-3", severity="apocalyptic")), "severity"),
        (to_structured_event(_event("x-4", type="vendor.thing")), "type"),
    ]
    for message, field in cases:
        r = await _post(api, key, message)
        assert r.status_code == 422, (field, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
    # The SDK will not even build an event with an invalid extension name; a hand-written sender might.
    invalid_name = {**json.loads(JSONFormat().write(_event("x-5"))), "Bad_Name": "1"}
    r = await api.post(
        "/api/v1/events",
        headers={**auth(key), "content-type": "application/cloudevents+json"},
        content=json.dumps(invalid_name),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "Bad_Name"
    batch = await _batch(api, key, [_event("y-1"), _event("y-2", data={"code": "E"}), _event("y-3")])
    assert batch.status_code == 422 and batch.json()["errors"][0]["field"] == "[1].data.message"
    plain = await api.post("/api/v1/events", headers={**auth(key), "content-type": "application/json"}, content=b"{}")
    assert plain.status_code == 422 and plain.json()["errors"][0]["field"] == "content-type"
    broken = await api.post(
        "/api/v1/events", headers={**auth(key), "content-type": "application/cloudevents+json"}, content=b"{nope"
    )
    assert broken.status_code == 422 and "not JSON" in broken.json()["detail"]
    bad_key = await _post(api, "andon_0000000000_wrong", to_structured_event(_event("z-1")))
    assert bad_key.status_code == 401
    assert (await _listed(api, key))["total"] == 0  # nothing of the above was stored


async def test_tenants_are_apart(api: httpx.AsyncClient, world: World) -> None:
    a, b = world.a.customer, world.b.customer
    assert (await _post(api, a.key, to_structured_event(_event("t-1")))).status_code == 201
    # The same (source, id) in another tenant is another event.
    assert (await _post(api, b.key, to_structured_event(_event("t-1")))).status_code == 201
    # A customer's key cannot send into, or read, another customer.
    into_b = await _post(api, a.key, to_structured_event(_event("t-2", tenantid=str(b.customer_id))))
    assert into_b.status_code == 404
    assert (await _listed(api, a.key))["total"] == 1 and (await _listed(api, b.key))["total"] == 1
    # A partner names its customer; another partner's customer does not exist for it.
    no_tenant = await _post(api, world.a.key, to_structured_event(_event("t-3")))
    assert no_tenant.status_code == 422 and no_tenant.json()["errors"][0]["field"] == "tenantid"
    ok = await _post(api, world.a.key, to_structured_event(_event("t-3", tenantid=str(a.customer_id))))
    assert ok.status_code == 201, ok.text
    foreign = await _post(api, world.a.key, to_structured_event(_event("t-4", tenantid=str(b.customer_id))))
    assert foreign.status_code == 404
    assert (
        await api.get("/api/v1/events", headers=auth(world.a.key), params={"customer_id": str(b.customer_id)})
    ).status_code == 404
    assert (await _listed(api, world.a.key, customer_id=str(a.customer_id)))["total"] == 2
    mixed = await _batch(
        api, world.a.key, [_event("t-5", tenantid=str(a.customer_id)), _event("t-6", tenantid=str(b.customer_id))]
    )
    assert mixed.status_code == 422


async def test_a_sender_key_sends_and_reads_nothing(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    made = await api.post(
        f"/api/v1/customers/{c.customer_id}/api-keys",
        headers=auth(c.key),
        json={"name": "gateway", "roles": ["ingest"]},
    )
    assert made.status_code == 201, made.text
    gateway = made.json()["key"]
    assert (await _post(api, gateway, to_binary_event(_event("g-1")))).status_code == 201
    assert (await api.get("/api/v1/events", headers=auth(gateway))).status_code == 403
    assert (await api.get(f"/api/v1/customers/{c.customer_id}/users", headers=auth(gateway))).status_code == 403


async def test_the_outbox_hands_each_event_to_a_worker_that_processes_it_once(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    key = world.a.customer.key
    batch = await _batch(api, key, [_event(f"w-{i}") for i in range(25)])
    assert batch.status_code == 201
    assert (await _listed(api, key, limit=1))["items"][0]["status"] == "accepted"
    assert await relay_all(app) == 25
    assert await relay_all(app) == 0  # sent rows are gone from the outbox
    with running_worker(app):
        drain(app)
        items = (await _listed(api, key, limit=100))["items"]
        assert {e["status"] for e in items} == {"processed"} and all(e["processed_at"] for e in items)
        # The broker delivers at least once: the same message again changes nothing.
        from andon.platform.events.ingress import PROCESS_ACTOR

        first = items[0]
        app.state.broker.get_actor(PROCESS_ACTOR).send(
            str(world.a.customer.customer_id), str(world.a.partner_id), first["id"]
        )
        drain(app)
    again = next(e for e in (await _listed(api, key, limit=100))["items"] if e["id"] == first["id"])
    assert again["processed_at"] == first["processed_at"]


async def test_the_catalogue_lists_every_type_with_its_schema(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/event-types")
    assert r.status_code == 200
    types = {t["type"]: t for t in r.json()}
    assert len(types) == 11 and types[ALARM]["alarm"] is True
    assert "message" in json.dumps(types[ALARM]["data_schema"])
