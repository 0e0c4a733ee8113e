"""Deploying templates for a customer: everything checked before anything is written, the workflow
built from the template, and upgrades, rollbacks and pauses moving between workflow versions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio


def _base(tenant: Tenant) -> str:
    return f"/api/v1/customers/{tenant.customer_id}/deployments"


async def _connection(api: httpx.AsyncClient, tenant: Tenant, key: str, type_: str, **body: Any) -> None:
    r = await api.post(
        f"/api/v1/customers/{tenant.customer_id}/outbound-connections/",
        headers=auth(tenant.key),
        json={"key": key, "name": key, "type": type_, **body},
    )
    assert r.status_code == 201, r.text


async def _slack(api: httpx.AsyncClient, tenant: Tenant, key: str = "shift_slack") -> None:
    await _connection(api, tenant, key, "slack", secrets={"webhook_url": "https://hooks.slack.com/services/T/B/x"})


async def _workflows(api: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/customers/{tenant.customer_id}/workflows/", headers=auth(tenant.key))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return sorted(items, key=lambda w: w["version"])


async def test_a_deployment_builds_the_workflow_from_the_template(api: httpx.AsyncClient, world: World) -> None:
    tenant = world.a.customer
    await _slack(api, tenant)
    r = await api.post(
        _base(tenant) + "/",
        headers=auth(tenant.key),
        json={
            "template": "shift-handover",
            "site_ids": [str(tenant.site_id)],
            "params": {"acknowledge_seconds": 900},
            "bindings": {"chat": "shift_slack"},
            "messages": {"acknowledge": "Read the handover and acknowledge."},
        },
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["key"], made["version"], made["status"], made["source"]) == (
        "shift-handover",
        "1.0.0",
        "active",
        "catalog",
    )
    assert {p["name"]: (p["value"], p["source"]) for p in made["params"]} == {
        "acknowledge_seconds": (900, "deployment"),
        "escalate_to_role": ("supervisor", "template"),
    }
    [workflow] = await _workflows(api, tenant)
    assert workflow["id"] == made["workflow_id"] and workflow["enabled"]
    assert workflow["trigger_type"] == "dev.andon.shift.handover.v1"
    assert str(tenant.site_id) in workflow["trigger_filter"]
    steps = {s["key"]: s for s in workflow["definition"]["steps"]}
    assert steps["post"]["capability"] == "shift_slack.notify"
    assert steps["acknowledge"]["instructions"] == "Read the handover and acknowledge."
    assert steps["acknowledge"]["due_seconds"] == 900
    assert workflow["definition"]["sla"][0]["coordinate_within"] == 900

    # The other customer sees none of it.
    other = world.b.customer
    assert (await api.get(_base(other) + "/", headers=auth(other.key))).json() == []
    assert (await api.get(f"{_base(tenant)}/{made['id']}", headers=auth(other.key))).status_code == 404
    assert (await api.get(f"{_base(other)}/{made['id']}", headers=auth(other.key))).status_code == 404
    # The same key cannot be deployed twice.
    again = await api.post(
        _base(tenant) + "/",
        headers=auth(tenant.key),
        json={"template": "shift-handover", "bindings": {"chat": "shift_slack"}},
    )
    assert again.status_code == 409


async def test_every_mistake_is_refused_by_field_and_nothing_is_deployed(api: httpx.AsyncClient, world: World) -> None:
    tenant = world.a.customer
    await _slack(api, tenant)
    await _connection(api, tenant, "line_mqtt", "mqtt", config={"host": "broker.example.com"})
    r = await api.post(
        _base(tenant) + "/",
        headers=auth(tenant.key),
        json={
            "template": "unplanned-downtime-escalation",
            "site_ids": ["00000000-0000-7000-8000-000000000000"],
            "params": {"acknowledge_seconds": 5, "work_order_priority": "URGENT"},
            "bindings": {"chat": "line_mqtt", "cmms": "nope", "mes": "shift_slack"},
            "messages": {"nonsense": "x"},
        },
    )
    assert r.status_code == 422, r.text
    errors = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert errors["params.acknowledge_seconds"] == "5 is less than the minimum of 60"
    assert "is not one of" in errors["params.work_order_priority"]
    assert errors["bindings.chat"] == "'line_mqtt' (mqtt) does not offer notify; chat needs them"
    assert errors["bindings.cmms"] == "you have no outbound connection 'nope'"
    assert errors["bindings.erp"].startswith("bind 'ERP (open orders)'")
    assert errors["bindings.mes"] == "the template has no binding 'mes'"
    assert errors["messages.nonsense"] == "the template has no message 'nonsense'"
    assert errors["site_ids[0]"].startswith("no site")
    for body, field in (
        ({"template": "no-such-template"}, "template"),
        ({"template": "shift-handover", "version": "9.9.9"}, "version"),
        ({"template": "shift-handover", "source": "partner"}, "template"),
    ):
        refused = await api.post(_base(tenant) + "/", headers=auth(tenant.key), json=body)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, refused.text
    assert (await api.get(_base(tenant) + "/", headers=auth(tenant.key))).json() == []
    assert await _workflows(api, tenant) == []


async def test_upgrade_rollback_and_pause_move_between_workflow_versions(api: httpx.AsyncClient, world: World) -> None:
    partner, tenant = auth(world.a.key), world.a.customer
    library = f"/api/v1/partners/{world.a.partner_id}/templates"
    fork = (await api.post(library + "/forks", json={"template": "shift-handover"}, headers=partner)).json()
    assert (await api.post(f"{library}/{fork['id']}/publish", headers=partner)).status_code == 200
    text = (await api.get("/api/v1/templates/shift-handover", headers=partner)).json()["yaml"]
    newer = text.replace("version: 1.0.0", "version: 1.1.0").replace("default: 1800", "default: 2400")
    assert (await api.put(f"{library}/{fork['id']}/draft", json={"yaml": newer}, headers=partner)).status_code == 200

    await _slack(api, tenant)
    r = await api.post(
        _base(tenant) + "/",
        headers=auth(tenant.key),
        json={"template": "shift-handover", "source": "partner", "bindings": {"chat": "shift_slack"}},
    )
    assert r.status_code == 201, r.text
    deployment = r.json()
    assert deployment["version"] == "1.0.0"
    # 1.1.0 is still a draft: not deployable.
    early = await api.post(
        f"{_base(tenant)}/{deployment['id']}/upgrade", headers=auth(tenant.key), json={"version": "1.1.0"}
    )
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "version"
    assert (await api.post(f"{library}/{fork['id']}/publish", headers=partner)).status_code == 200

    upgraded = await api.post(
        f"{_base(tenant)}/{deployment['id']}/upgrade", headers=auth(tenant.key), json={"version": "1.1.0"}
    )
    assert upgraded.status_code == 200, upgraded.text
    assert (upgraded.json()["version"], upgraded.json()["previous_version"]) == ("1.1.0", "1.0.0")
    v1, v2 = await _workflows(api, tenant)
    assert (v1["enabled"], v2["enabled"]) == (False, True)
    assert v2["params"]["acknowledge_seconds"] == 2400 and v2["id"] == upgraded.json()["workflow_id"]

    paused = (await api.post(f"{_base(tenant)}/{deployment['id']}/pause", headers=auth(tenant.key))).json()
    assert paused["status"] == "paused"
    assert [w["enabled"] for w in await _workflows(api, tenant)] == [False, False]
    rolled = (await api.post(f"{_base(tenant)}/{deployment['id']}/rollback", headers=auth(tenant.key))).json()
    assert (rolled["version"], rolled["status"]) == ("1.0.0", "paused")
    assert [w["enabled"] for w in await _workflows(api, tenant)] == [False, False]
    resumed = (await api.post(f"{_base(tenant)}/{deployment['id']}/resume", headers=auth(tenant.key))).json()
    assert resumed["workflow_id"] == v1["id"]
    assert [w["enabled"] for w in await _workflows(api, tenant)] == [True, False]

    audit = [
        e["action"]
        for e in (await api.get(f"/api/v1/customers/{tenant.customer_id}/audit", headers=auth(tenant.key))).json()
    ]
    assert {"deployment.created", "deployment.upgraded", "deployment.paused", "deployment.rolled_back"} <= set(audit)
