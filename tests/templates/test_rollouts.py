"""A partner upgrades twenty customers in two waves; a run under way keeps its version, and rolling
back a wave returns just its customers to the version they had."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio

SLACK = {"webhook_url": "https://hooks.slack.com/services/T/B/x"}


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_twenty_customers_in_two_waves_with_a_run_under_way_and_a_wave_rolled_back(
    api: httpx.AsyncClient, world: World
) -> None:
    partner = auth(world.a.key)
    library = f"/api/v1/partners/{world.a.partner_id}/templates"
    fork = await _ok(await api.post(library + "/forks", json={"template": "shift-handover"}, headers=partner), 201)
    await _ok(await api.post(f"{library}/{fork['id']}/publish", headers=partner))
    text = (await _ok(await api.get("/api/v1/templates/shift-handover", headers=partner)))["yaml"]
    newer = text.replace("version: 1.0.0", "version: 1.1.0").replace("default: 1800", "default: 2400")
    await _ok(await api.put(f"{library}/{fork['id']}/draft", json={"yaml": newer}, headers=partner))
    await _ok(await api.post(f"{library}/{fork['id']}/publish", headers=partner))

    # Twenty customers (the partner acting in each), each with the template deployed at 1.0.0.
    customers = [str(world.a.customer.customer_id)]
    for n in range(19):
        made = await _ok(
            await api.post("/api/v1/customers/", json={"slug": f"plant-{n:02}", "name": f"Plant {n}"}, headers=partner),
            201,
        )
        customers.append(made["id"])
    deployments: dict[str, str] = {}
    for cid in customers:
        await _ok(
            await api.post(
                f"/api/v1/customers/{cid}/outbound-connections/",
                json={"key": "shift_slack", "name": "Shift", "type": "slack", "secrets": SLACK},
                headers=partner,
            ),
            201,
        )
        made = await _ok(
            await api.post(
                f"/api/v1/customers/{cid}/deployments/",
                json={
                    "template": "shift-handover",
                    "source": "partner",
                    "version": "1.0.0",
                    "bindings": {"chat": "shift_slack"},
                },
                headers=partner,
            ),
            201,
        )
        deployments[cid] = made["id"]

    # A run under way on the first customer's 1.0.0 workflow.
    first = customers[0]
    workflow_v1 = (
        await _ok(await api.get(f"/api/v1/customers/{first}/deployments/{deployments[first]}", headers=partner))
    )["workflow_id"]
    run = await _ok(
        await api.post(
            f"/api/v1/customers/{first}/workflows/{workflow_v1}/runs",
            json={"event": {"data": {"shift": "Early", "notes": "all quiet", "open_issues": []}}},
            headers=partner,
        ),
        201,
    )

    waves = [customers[:5], customers[5:]]
    rollout = await _ok(
        await api.post(
            f"/api/v1/partners/{world.a.partner_id}/rollouts/",
            json={"template": "shift-handover", "version": "1.1.0", "waves": waves},
            headers=partner,
        ),
        201,
    )
    base = f"/api/v1/partners/{world.a.partner_id}/rollouts/{rollout['id']}"

    async def versions() -> dict[str, str]:
        found = {}
        for cid, did in deployments.items():
            found[cid] = (await _ok(await api.get(f"/api/v1/customers/{cid}/deployments/{did}", headers=partner)))[
                "version"
            ]
        return found

    canary = await _ok(await api.post(base + "/advance", headers=partner))
    assert canary["status"] == "in_progress" and canary["next_wave"] == 1
    assert [(c["status"], c["from_version"]) for c in canary["customers"]] == [("upgraded", "1.0.0")] * 5
    now = await versions()
    assert [now[c] for c in waves[0]] == ["1.1.0"] * 5 and [now[c] for c in waves[1]] == ["1.0.0"] * 15

    done = await _ok(await api.post(base + "/advance", headers=partner))
    assert done["status"] == "completed" and {c["status"] for c in done["customers"]} == {"upgraded"}
    assert len(done["customers"]) == 20 and set((await versions()).values()) == {"1.1.0"}
    assert (await api.post(base + "/advance", headers=partner)).status_code == 409

    # The run started on 1.0.0 is still on it.
    kept = await _ok(await api.get(f"/api/v1/customers/{first}/runs/{run['id']}", headers=partner))
    assert (kept["run"]["version"], kept["run"]["workflow_id"]) == (1, workflow_v1)
    assert kept["definition"]["sla"][0]["coordinate_within"] == 1800

    back = await _ok(await api.post(base + "/waves/0/rollback", headers=partner))
    assert [c["status"] for c in back["customers"] if c["wave"] == 0] == ["rolled_back"] * 5
    now = await versions()
    assert [now[c] for c in waves[0]] == ["1.0.0"] * 5 and [now[c] for c in waves[1]] == ["1.1.0"] * 15
    assert (await api.post(base + "/waves/5/rollback", headers=partner)).status_code in (400, 422)

    # Nobody else sees the rollout, nor rolls out to customers that are not theirs.
    other = auth(world.b.key)
    assert (await api.get(base, headers=other)).status_code == 404
    refused = await api.post(
        f"/api/v1/partners/{world.b.partner_id}/rollouts/",
        json={"template": "shift-handover", "version": "1.1.0", "waves": [[customers[0]]]},
        headers=other,
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "template"
