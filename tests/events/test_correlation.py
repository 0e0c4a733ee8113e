"""From events to alerts and incidents: repeats merge into one alert that counts them, alarms clear
and acknowledge it, chattering is counted but never re-notified, shelves hold a key, an asset's alerts
share an incident, and an alarm flood becomes one incident instead of thousands of notifications."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.support.workers import drain, relay_all, running_worker
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"
_sequence = iter(range(1_000_000))


def alarm(code: str = "E42", state: str = "raised", asset: str = "alpha-customer-P", **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"ev-{next(_sequence)}",
        "source": "urn:plc:press",
        "type": ALARM,
        "assetid": asset,
        "data": {"code": code, "message": f"Alarm {code}", "state": state},
        **extra,
    }


async def send(
    app: Litestar, api: httpx.AsyncClient, key: str, events: list[dict[str, Any]], seconds: float = 30
) -> None:
    headers = {**auth(key), "content-type": "application/cloudevents-batch+json"}
    for start in range(0, len(events), 500):
        r = await api.post("/api/v1/events", json=events[start : start + 500], headers=headers)
        assert r.status_code == 201, r.text
    await relay_all(app)
    drain(app, seconds)


async def alerts(api: httpx.AsyncClient, world: World, **params: Any) -> list[dict[str, Any]]:
    c = world.a.customer
    r = await api.get(f"/api/v1/customers/{c.customer_id}/alerts", headers=auth(c.key), params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def incidents(api: httpx.AsyncClient, world: World, **params: Any) -> list[dict[str, Any]]:
    c = world.a.customer
    r = await api.get(
        f"/api/v1/customers/{c.customer_id}/incidents", headers=auth(c.key), params={"limit": 100, **params}
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_repeats_merge_and_alarms_drive_the_lifecycle(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    key = world.a.customer.key
    with running_worker(app):
        await send(app, api, key, [alarm(), alarm(), alarm(severity="critical")])
        [alert] = await alerts(api, world)
        assert (alert["count"], alert["status"], alert["severity"], alert["notifications"]) == (
            3,
            "triggered",
            "critical",
            1,
        )
        assert alert["asset_id"] == str(world.a.customer.asset_id)
        await send(app, api, key, [alarm(state="acknowledged")])
        assert (await alerts(api, world))[0]["status"] == "acknowledged"
        await send(app, api, key, [alarm(state="cleared")])
        assert (await alerts(api, world))[0]["status"] == "resolved"
        await send(app, api, key, [alarm()])  # it happens again: a new alert, told again
        fresh = await alerts(api, world, status="triggered")
        assert len(fresh) == 1 and fresh[0]["id"] != alert["id"] and fresh[0]["notifications"] == 1
        # Not an alarm type: stored and processed, no alert.
        state_change = {**alarm(), "type": "dev.andon.machine.state_changed.v1", "data": {"state": "running"}}
        await send(app, api, key, [state_change])
        assert len(await alerts(api, world)) == 2


async def test_chattering_is_counted_not_renotified_and_an_assets_alerts_share_an_incident(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    key = world.a.customer.key
    with running_worker(app):
        await send(app, api, key, [alarm("E1") for _ in range(8)] + [alarm("E2")])
        await send(app, api, key, [alarm("E9", asset="alpha-customer-S-unknown", siteid="alpha-customer-S")])
    by_code = {a["dedup_key"].rsplit(":", 1)[1]: a for a in await alerts(api, world)}
    assert by_code["E1"]["count"] == 8 and by_code["E1"]["chattering"] and by_code["E1"]["notifications"] == 1
    assert not by_code["E2"]["chattering"]
    assert by_code["E1"]["incident_id"] == by_code["E2"]["incident_id"]  # same asset, same incident
    assert by_code["E9"]["incident_id"] != by_code["E1"]["incident_id"]
    c = world.a.customer
    r = await api.get(
        f"/api/v1/customers/{c.customer_id}/incidents/{by_code['E1']['incident_id']}", headers=auth(c.key)
    )
    detail = r.json()
    assert detail["incident"]["alert_count"] == 2 and len(detail["alerts"]) == 2
    assert [e["kind"] for e in detail["timeline"]] == ["opened", "alert", "alert"]


async def test_alerts_naming_one_parent_share_its_incident_across_assets(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    key = world.a.customer.key
    stop = "line-stop-4711"
    with running_worker(app):
        await send(app, api, key, [alarm("P1", asset="press-1", incidentkey=stop), alarm("F1", asset="feeder-9")])
        await send(app, api, key, [alarm("C7", asset="conveyor-3", incidentkey=stop)])
    by_code = {a["dedup_key"].rsplit(":", 1)[1]: a for a in await alerts(api, world)}
    assert by_code["P1"]["incident_id"] == by_code["C7"]["incident_id"] != by_code["F1"]["incident_id"]
    [parent] = [i for i in await incidents(api, world) if i["id"] == by_code["P1"]["incident_id"]]
    assert parent["alert_count"] == 2 and parent["group_key"] == stop


async def test_people_acknowledge_resolve_and_shelve_with_an_audit_trail(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/alerts"
    with running_worker(app):
        await send(app, api, c.key, [alarm("E5")])
        [alert] = await alerts(api, world)
        url = f"{base}/{alert['id']}"
        acked = await api.post(f"{url}/acknowledge", headers=auth(c.key))
        assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
        assert (await api.post(f"{url}/acknowledge", headers=auth(c.key))).status_code == 409
        owned = await api.get(
            f"/api/v1/customers/{c.customer_id}/incidents/{alert['incident_id']}", headers=auth(c.key)
        )
        assert owned.json()["incident"]["status"] == "acknowledged"  # its only alert has an owner
        bad = await api.post(f"{url}/shelve", headers=auth(c.key), json={"minutes": 0, "reason": "x"})
        assert bad.status_code == 422
        shelved = await api.post(f"{url}/shelve", headers=auth(c.key), json={"minutes": 60, "reason": "sensor swap"})
        assert shelved.status_code == 200 and shelved.json()["shelved_reason"] == "sensor swap"
        assert (await api.post(f"{url}/resolve", headers=auth(c.key))).json()["status"] == "resolved"
        await send(app, api, c.key, [alarm("E5")])  # the key is on the shelf: a new alert tells nobody
        held = await alerts(api, world, status="triggered")
        assert len(held) == 1 and held[0]["notifications"] == 0 and held[0]["shelved_until"]
        assert (await api.post(f"{base}/{held[0]['id']}/unshelve", headers=auth(c.key))).json()["shelved_until"] is None
    trail = await api.get(f"/api/v1/customers/{c.customer_id}/audit", headers=auth(c.key))
    actions = [e["action"] for e in trail.json()]
    assert {"alert.acknowledged", "alert.shelved", "alert.resolved", "alert.unshelved"} <= set(actions)
    first = f"/api/v1/customers/{c.customer_id}/incidents/{alert['incident_id']}"
    timeline = (await api.get(first, headers=auth(c.key))).json()
    assert [e["kind"] for e in timeline["timeline"]] == [
        "opened",
        "alert",
        "acknowledged",
        "acknowledged",
        "shelved",
        "resolved",
        "resolved",
    ]
    assert timeline["incident"]["status"] == "resolved"  # its last alert was resolved
    # Another customer finds nothing; a sender key may not touch alerts.
    b = world.b.customer
    assert (await api.get(f"/api/v1/customers/{b.customer_id}/alerts", headers=auth(b.key))).json()["total"] == 0
    assert (await api.post(f"{url}/resolve", headers=auth(b.key))).status_code == 404
    foreign = await api.post(f"/api/v1/customers/{b.customer_id}/alerts/{alert['id']}/resolve", headers=auth(b.key))
    assert foreign.status_code == 404


@pytest.mark.slow
async def test_a_flood_of_5000_alarms_is_one_alert_and_one_flood_incident(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    """One chattering asset sends 5,000 alarms within a minute: one alert counts them all, one flood
    incident speaks for the site, and only two notifications go out (the alert's first, the flood's)."""
    key = world.a.customer.key
    with running_worker(app):
        started = time.monotonic()
        await send(app, api, key, [alarm("E77", siteid="alpha-customer-S") for _ in range(5000)], seconds=600)
        print(f"5,000 alarms accepted and correlated in {time.monotonic() - started:.1f} s")
    every = await alerts(api, world)
    assert len(every) == 1 and every[0]["count"] == 5000 and every[0]["chattering"]
    open_incidents = await incidents(api, world, status="open")
    assert [i["kind"] for i in open_incidents] == ["flood"]
    flood = open_incidents[0]
    assert flood["event_count"] >= 4900 and every[0]["incident_id"] == flood["id"]
    merged = await incidents(api, world, status="merged")
    assert all(i["merged_into"] == flood["id"] for i in merged)
    told = sum(a["notifications"] for a in every) + sum(i["notifications"] for i in open_incidents + merged)
    assert told <= 2
