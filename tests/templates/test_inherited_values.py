"""Parameters inherited partner → customer → site, overridable at each level, and shown with the level
each value came from."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


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
