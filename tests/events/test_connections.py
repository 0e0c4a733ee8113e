"""Source connections as a customer administrator manages them: the signing secret is shown once (on
create and on rotation) and never again, in reads or in the audit trail; every change is audited;
another customer does not know the connection exists."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"


def _base(world: World) -> str:
    return f"/api/v1/customers/{world.a.customer.customer_id}/connections"


async def _create(api: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    r = await api.post(_base(world) + "/", headers=auth(world.a.customer.key), json={"name": "MES", **fields})
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


async def _audit_text(api: httpx.AsyncClient, world: World) -> str:
    c = world.a.customer
    r = await api.get(f"/api/v1/customers/{c.customer_id}/audit", headers=auth(c.key), params={"limit": 500})
    assert r.status_code == 200, r.text
    return r.text


async def test_the_secret_is_shown_once_and_never_again(api: httpx.AsyncClient, world: World) -> None:
    key = auth(world.a.customer.key)
    made = await _create(api, world, event_type=ALARM)
    secret = made["secret"]
    assert secret.startswith("whsec_") and made["verifier"] == "standard_webhooks"
    assert made["source"] == f"urn:andon:connection:{made['id']}"
    assert made["webhook_path"] == f"/hooks/{made['id']}" and made["tolerance_seconds"] == 300 and made["enabled"]

    listed = await api.get(_base(world) + "/", headers=key)
    one = await api.get(f"{_base(world)}/{made['id']}", headers=key)
    assert listed.status_code == one.status_code == 200
    assert listed.json()["total"] == 1 and listed.json()["items"][0]["id"] == made["id"]
    for read in (listed, one):
        assert secret not in read.text and "secret_sealed" not in read.text and '"secret"' not in read.text

    rotated = await api.post(f"{_base(world)}/{made['id']}/rotate-secret", headers=key, json={})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != secret
    assert rotated.json()["previous_secret_expires_at"] and rotated.json()["secret_rotated_at"]
    again = await api.get(f"{_base(world)}/{made['id']}", headers=key)
    assert new_secret not in again.text and secret not in again.text

    trail = await _audit_text(api, world)
    assert "source_connection.created" in trail and "source_connection.secret_rotated" in trail
    assert secret not in trail and new_secret not in trail and "secret_sealed" not in trail


async def test_every_change_is_audited_and_checked(api: httpx.AsyncClient, world: World) -> None:
    key = auth(world.a.customer.key)
    made = await _create(api, world, source="urn:vendor:mes", event_type=ALARM)
    item = f"{_base(world)}/{made['id']}"
    patched = await api.patch(item, headers=key, json={"name": "MES line 2", "enabled": False, "tolerance_seconds": 60})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["enabled"], patched.json()["tolerance_seconds"]) == (
        "MES line 2",
        False,
        60,
    )
    assert patched.json()["source"] == "urn:vendor:mes"

    refusals: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "event_type": "vendor.thing"}, "event_type"),
        ({"name": "x", "verifier": "hmac_sha256_body"}, "signature_header"),
        ({"name": "x", "secret": "not-a-standard-webhooks-secret"}, "secret"),
        ({"name": "x", "secret": "whsec_" + "QUJD"}, "secret"),  # base64, but only 3 bytes
    ]
    for body, field in refusals:
        r = await api.post(_base(world) + "/", headers=key, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
    taken = await api.post(_base(world) + "/", headers=key, json={"name": "MES line 2"})
    assert taken.status_code == 409 and taken.json()["errors"][0]["field"] == "name"
    wide = await api.post(_base(world) + "/", headers=key, json={"name": "y", "tolerance_seconds": 3600})
    assert wide.status_code in (400, 422)
    cleared = await api.patch(item, headers=key, json={"event_type": None})
    assert cleared.status_code == 200 and cleared.json()["event_type"] is None

    assert (await api.delete(item, headers=key)).status_code == 204
    assert (await api.get(item, headers=key)).status_code == 404
    assert (await api.get(item + "/deliveries", headers=key)).status_code == 404
    trail = json.loads(await _audit_text(api, world))
    actions = [e["action"] for e in trail if e["target_type"] == "source_connection"]
    assert sorted(actions) == [
        "source_connection.created",
        "source_connection.deleted",
        "source_connection.updated",
        "source_connection.updated",
    ]
    update = next(e for e in trail if e["action"] == "source_connection.updated" and e["before"]["name"] == "MES")
    assert update["before"]["enabled"] is True and update["after"]["enabled"] is False


async def test_a_vendor_may_dictate_the_secret(api: httpx.AsyncClient, world: World) -> None:
    chosen = "vendor-chosen-secret-0123456789"
    made = await _create(
        api,
        world,
        verifier="hmac_sha256_body",
        signature_header="X-Signature",
        signature_prefix="sha256=",
        secret=chosen,
        event_type=ALARM,
    )
    assert made["secret"] == chosen and made["signature_header"] == "X-Signature"
    trail = await _audit_text(api, world)
    assert chosen not in trail


async def test_roles_and_tenants(api: httpx.AsyncClient, world: World) -> None:
    a, b = world.a.customer, world.b.customer
    made = await _create(api, world, event_type=ALARM)
    # Another customer's administrator: the connection does not exist, under either customer.
    for url in (
        f"/api/v1/customers/{a.customer_id}/connections/{made['id']}",
        f"/api/v1/customers/{b.customer_id}/connections/{made['id']}",
        f"/api/v1/customers/{b.customer_id}/connections/{made['id']}/deliveries",
    ):
        assert (await api.get(url, headers=auth(b.key))).status_code == 404, url
    foreign_rotate = await api.post(
        f"/api/v1/customers/{b.customer_id}/connections/{made['id']}/rotate-secret", headers=auth(b.key), json={}
    )
    assert foreign_rotate.status_code == 404
    assert (await api.get(f"/api/v1/customers/{b.customer_id}/connections/", headers=auth(b.key))).json()["total"] == 0
    # The customer's partner manages it too (its partner access is on); the other partner cannot.
    by_partner = await api.get(f"{_base(world)}/{made['id']}", headers=auth(world.a.key))
    assert by_partner.status_code == 200 and "secret" not in by_partner.json()
    assert (await api.get(f"{_base(world)}/{made['id']}", headers=auth(world.b.key))).status_code == 404
    # An auditor reads connections but cannot change them or see a secret.
    issued = await api.post(
        f"/api/v1/customers/{a.customer_id}/api-keys", headers=auth(a.key), json={"name": "aud", "roles": ["auditor"]}
    )
    auditor = auth(issued.json()["key"])
    assert (await api.get(_base(world) + "/", headers=auditor)).status_code == 200
    assert (await api.post(f"{_base(world)}/{made['id']}/rotate-secret", headers=auditor, json={})).status_code == 403
