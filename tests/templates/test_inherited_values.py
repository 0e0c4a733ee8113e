"""Parameters inherited partner → customer → site, overridable at each level, and shown with the level
each value came from."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.support.workers import drain, relay_all, running_worker
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
SLACK = "https://hooks.slack.com/services/T/B/x"


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_values_come_from_the_nearest_level_that_sets_them(api: httpx.AsyncClient, world: World) -> None:
    partner, tenant = auth(world.a.key), world.a.customer
    customer = auth(tenant.key)
    partner_values = f"/api/v1/partners/{world.a.partner_id}/template-values/shift-handover"
    customer_values = f"/api/v1/customers/{tenant.customer_id}/template-values/shift-handover"

    refused = await api.put(
        partner_values, json={"values": {"acknowledge_seconds": 5, "colour": "red"}}, headers=partner
    )
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["errors"]} == {"values.acknowledge_seconds", "values.colour"}
    await _ok(await api.put(partner_values, json={"values": {"acknowledge_seconds": 1200}}, headers=partner))
    await _ok(await api.put(customer_values, json={"values": {"escalate_to_role": "technician"}}, headers=customer))
    await _ok(
        await api.put(
            customer_values,
            params={"site_id": str(tenant.site_id)},
            json={"values": {"acknowledge_seconds": 600}},
            headers=customer,
        )
    )
    levels = await _ok(await api.get(customer_values, headers=customer))
    assert levels["template"] == {"acknowledge_seconds": 1800, "escalate_to_role": "supervisor"}
    assert levels["partner"] == {"acknowledge_seconds": 1200}
    assert levels["customer"] == {
        "": {"escalate_to_role": "technician"},
        str(tenant.site_id): {"acknowledge_seconds": 600},
    }

    await _ok(
        await api.post(
            f"/api/v1/customers/{tenant.customer_id}/outbound-connections/",
            json={
                "key": "shift_slack",
                "name": "Shift",
                "type": "slack",
                "secrets": {"webhook_url": "https://hooks.slack.com/services/T/B/x"},
            },
            headers=customer,
        ),
        201,
    )

    async def deploy(**body: Any) -> dict[str, Any]:
        made: dict[str, Any] = await _ok(
            await api.post(
                f"/api/v1/customers/{tenant.customer_id}/deployments/",
                json={"template": "shift-handover", "bindings": {"chat": "shift_slack"}, **body},
                headers=customer,
            ),
            201,
        )
        return {p["name"]: (p["value"], p["source"]) for p in made["params"]}

    assert await deploy() == {"acknowledge_seconds": (1200, "partner"), "escalate_to_role": ("technician", "customer")}
    assert await deploy(key="handover-site", site_ids=[str(tenant.site_id)]) == {
        "acknowledge_seconds": (600, "site"),
        "escalate_to_role": ("technician", "customer"),
    }
    assert await deploy(key="handover-own", params={"escalate_to_role": "quality"}) == {
        "acknowledge_seconds": (1200, "partner"),
        "escalate_to_role": ("quality", "deployment"),
    }

    # The other partner's customer inherits nothing of this partner's; nobody else may set its values.
    other = world.b.customer
    theirs = await _ok(
        await api.get(f"/api/v1/customers/{other.customer_id}/template-values/shift-handover", headers=auth(other.key))
    )
    assert theirs["partner"] == {} and theirs["customer"] == {}
    assert (await api.put(partner_values, json={"values": {}}, headers=auth(world.b.key))).status_code == 404
    assert (await api.put(partner_values, json={"values": {}}, headers=customer)).status_code in (403, 404)
    bad_site = await api.put(
        customer_values, params={"site_id": str(other.site_id)}, json={"values": {}}, headers=customer
    )
    assert bad_site.status_code == 422 and bad_site.json()["errors"][0]["field"] == "site_id"


async def test_a_deployment_for_several_sites_runs_each_site_with_its_own_values(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    tenant = world.a.customer
    customer, base = auth(tenant.key), f"/api/v1/customers/{tenant.customer_id}"
    linz = await _ok(
        await api.post(
            f"{base}/sites", json={"name": "Linz", "timezone": "Europe/Vienna", "external_id": "LNZ"}, headers=customer
        ),
        201,
    )
    values = f"{base}/template-values/shift-handover"
    await _ok(await api.put(values, json={"values": {"escalate_to_role": "technician"}}, headers=customer))
    await _ok(
        await api.put(
            values, params={"site_id": linz["id"]}, json={"values": {"acknowledge_seconds": 600}}, headers=customer
        )
    )
    await _ok(
        await api.post(
            f"{base}/outbound-connections/",
            json={"key": "shift_slack", "name": "Shift", "type": "slack", "secrets": {"webhook_url": SLACK}},
            headers=customer,
        ),
        201,
    )
    deployed = await _ok(
        await api.post(
            f"{base}/deployments/",
            json={
                "template": "shift-handover",
                "bindings": {"chat": "shift_slack"},
                "site_ids": [str(tenant.site_id), linz["id"]],
            },
            headers=customer,
        ),
        201,
    )
    main = {p["name"]: (p["value"], p["source"]) for p in deployed["params"]}
    assert main["acknowledge_seconds"] == (1800, "template")
    [variant] = deployed["site_variants"]
    assert variant["site_ids"] == [linz["id"]]
    assert {p["name"]: (p["value"], p["source"]) for p in variant["params"]} == {
        "acknowledge_seconds": (600, "site"),
        "escalate_to_role": ("technician", "customer"),
    }

    # A handover at each plant: each runs with its own plant's values.
    for site_ref in (f"{tenant.slug}-S", "LNZ"):
        sent = await api.post(
            "/api/v1/events",
            headers={**customer, "content-type": "application/cloudevents+json"},
            json={
                "specversion": "1.0",
                "id": f"handover-{site_ref}",
                "source": "urn:mes",
                "type": "dev.andon.shift.handover.v1",
                "siteid": site_ref,
                "data": {"shift": "Early", "notes": "all quiet"},
            },
        )
        assert sent.status_code == 201, sent.text
    await relay_all(app)
    with running_worker(app):
        drain(app)
    runs = (await _ok(await api.get(f"{base}/runs/", headers=customer)))["items"]
    by_site = {r["site_id"]: r for r in runs}
    assert set(by_site) == {str(tenant.site_id), linz["id"]}
    assert by_site[str(tenant.site_id)]["workflow_key"] == "shift-handover"
    assert by_site[linz["id"]]["workflow_key"].startswith("shift-handover--")
    for site_id, seconds in ((str(tenant.site_id), 1800), (linz["id"], 600)):
        detail = await _ok(await api.get(f"{base}/runs/{by_site[site_id]['id']}", headers=customer))
        assert detail["context"]["params"]["acknowledge_seconds"] == seconds

    # Pausing, upgrading and rolling back move every site's workflow together.
    paused = await _ok(await api.post(f"{base}/deployments/{deployed['id']}/pause", headers=customer))
    workflows = (await _ok(await api.get(f"{base}/workflows/", headers=customer)))["items"]
    mine = {w["id"]: w for w in workflows}
    assert not mine[paused["workflow_id"]]["enabled"] and not mine[variant["workflow_id"]]["enabled"]
    resumed = await _ok(await api.post(f"{base}/deployments/{deployed['id']}/resume", headers=customer))
    upgraded = await _ok(
        await api.post(
            f"{base}/deployments/{deployed['id']}/upgrade",
            json={"version": resumed["version"], "params": {"escalate_to_role": "quality"}},
            headers=customer,
        )
    )
    [new_variant] = upgraded["site_variants"]
    assert {p["name"]: p["value"] for p in new_variant["params"]}["escalate_to_role"] == "quality"
    assert new_variant["workflow_id"] != variant["workflow_id"]

    async def enabled() -> dict[str, bool]:
        items = (await _ok(await api.get(f"{base}/workflows/", headers=customer)))["items"]
        return {w["id"]: w["enabled"] for w in items}

    now = await enabled()
    assert now[upgraded["workflow_id"]] and now[new_variant["workflow_id"]]
    assert not now[deployed["workflow_id"]] and not now[variant["workflow_id"]]
    back = await _ok(await api.post(f"{base}/deployments/{deployed['id']}/rollback", headers=customer))
    assert back["site_variants"][0]["workflow_id"] == variant["workflow_id"]
    now = await enabled()
    assert now[deployed["workflow_id"]] and now[variant["workflow_id"]]
    assert not now[upgraded["workflow_id"]] and not now[new_variant["workflow_id"]]
