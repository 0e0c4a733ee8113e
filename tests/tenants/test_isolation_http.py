"""Through the HTTP API, nothing of one tenant is visible to or changeable by another: every read,
update and delete of another tenant's object is a 404 with the same body as a missing object."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio

PLANT = ["sites", "areas", "lines", "assets", "shift-calendars"]
PATCH_BODY = {"name": "hijacked"}


def _callers(world: World) -> list[tuple[str, str, Any, Any]]:
    """(who, key, own customer, other customer): both customers and both partners, each way."""
    return [
        ("customer a", world.a.customer.key, world.a.customer, world.b.customer),
        ("customer b", world.b.customer.key, world.b.customer, world.a.customer),
        ("partner a", world.a.key, world.a.customer, world.b.customer),
        ("partner b", world.b.key, world.b.customer, world.a.customer),
    ]


async def test_plant_objects_of_another_tenant_are_404(client: AsyncTestClient[Any], world: World) -> None:
    for who, key, own, other in _callers(world):
        for kind in PLANT:
            foreign = other.node(kind)
            # Through the caller's own customer path, with the other tenant's object id.
            own_url = f"/api/v1/customers/{own.customer_id}/{kind}/{foreign}"
            # Through the other customer's path directly.
            other_url = f"/api/v1/customers/{other.customer_id}/{kind}/{foreign}"
            for url in (own_url, other_url):
                for method, body in (("GET", None), ("PATCH", PATCH_BODY), ("DELETE", None)):
                    r = await client.request(method, url, json=body, headers=auth(key))
                    assert r.status_code == 404, (who, method, url, r.text)
                    assert r.headers["content-type"].startswith("application/problem+json")
            lst = await client.get(f"/api/v1/customers/{other.customer_id}/{kind}", headers=auth(key))
            assert lst.status_code == 404, (who, kind)
            mine = await client.get(f"/api/v1/customers/{own.customer_id}/{kind}", headers=auth(key))
            assert mine.status_code == 200
            assert {i["tenant_id"] for i in mine.json()["items"]} == {str(own.customer_id)}
            create = await client.post(
                f"/api/v1/customers/{other.customer_id}/{kind}",
                json={"name": "x", "site_id": str(own.site_id)},
                headers=auth(key),
            )
            assert create.status_code == 404, (who, kind)

    # Nothing was changed by any of the refused calls.
    for org in (world.a, world.b):
        r = await client.get(
            f"/api/v1/customers/{org.customer.customer_id}/sites/{org.customer.site_id}", headers=auth(org.key)
        )
        assert r.json()["name"] == f"{org.customer.slug} plant"


async def test_not_found_body_is_the_same_for_foreign_and_missing(client: AsyncTestClient[Any], world: World) -> None:
    own = world.a.customer
    foreign_id, missing_id = world.b.customer.site_id, uuid.uuid4()
    foreign = await client.get(f"/api/v1/customers/{own.customer_id}/sites/{foreign_id}", headers=auth(own.key))
    missing = await client.get(f"/api/v1/customers/{own.customer_id}/sites/{missing_id}", headers=auth(own.key))
    assert (foreign.status_code, missing.status_code) == (404, 404)
    body_f, body_m = foreign.json(), missing.json()
    for body, the_id in ((body_f, foreign_id), (body_m, missing_id)):
        body.pop("request_id")
        body["detail"] = body["detail"].replace(str(the_id), "<id>")
        body["instance"] = body["instance"].replace(str(the_id), "<id>")
    assert body_f == body_m


async def test_customers_and_partners_of_others_are_404(client: AsyncTestClient[Any], world: World) -> None:
    for who, key, _own, other in _callers(world):
        url = f"/api/v1/customers/{other.customer_id}"
        for method, body in (("GET", None), ("PATCH", PATCH_BODY), ("DELETE", None)):
            r = await client.request(method, url, json=body, headers=auth(key))
            assert r.status_code == 404, (who, method, r.text)
        listed = await client.get("/api/v1/customers", headers=auth(key))
        assert str(other.customer_id) not in {c["id"] for c in listed.json()["items"]}
    for key, other in ((world.a.key, world.b), (world.b.key, world.a)):
        url = f"/api/v1/partners/{other.partner_id}"
        assert (await client.get(url, headers=auth(key))).status_code == 404
        listed = await client.get("/api/v1/partners", headers=auth(key))
        assert [p["id"] for p in listed.json()["items"]] != [] and str(other.partner_id) not in {
            p["id"] for p in listed.json()["items"]
        }


async def test_api_keys_and_audit_of_another_tenant_are_404(client: AsyncTestClient[Any], world: World) -> None:
    for who, key, own, other in _callers(world):
        for url in (
            f"/api/v1/customers/{own.customer_id}/api-keys/{other.key_id}",
            f"/api/v1/customers/{other.customer_id}/api-keys/{other.key_id}",
        ):
            assert (await client.get(url, headers=auth(key))).status_code == 404, (who, url)
            assert (await client.delete(url, headers=auth(key))).status_code == 404, (who, url)
        assert (await client.get(f"/api/v1/customers/{other.customer_id}/audit", headers=auth(key))).status_code == 404
        trail = await client.get(f"/api/v1/customers/{own.customer_id}/audit", headers=auth(key))
        assert trail.status_code == 200
        assert {e["chain"] for e in trail.json()} == {f"tenant:{own.customer_id}"}
    # A partner's own keys: the other partner's key id is unknown to it.
    for key, other in ((world.a.key, world.b), (world.b.key, world.a)):
        assert (await client.get(f"/api/v1/api-keys/{other.key_id}", headers=auth(key))).status_code == 404
        assert (await client.delete(f"/api/v1/api-keys/{other.key_id}", headers=auth(key))).status_code == 404
    # The refused revocations changed nothing: every key still works.
    for key in (world.a.key, world.b.key, world.a.customer.key, world.b.customer.key):
        assert (await client.get("/api/v1/customers", headers=auth(key))).status_code == 200


async def test_imports_into_another_tenant_are_404(client: AsyncTestClient[Any], world: World) -> None:
    body = b"kind,external_id,name\nsite,X1,Stolen\n"
    for who, key, _own, other in _callers(world):
        r = await client.post(
            f"/api/v1/customers/{other.customer_id}/plant-imports",
            content=body,
            headers={**auth(key), "content-type": "text/csv"},
        )
        assert r.status_code == 404, who


@pytest.mark.parametrize("kind", [k for k in PLANT if k != "sites"])
async def test_parent_in_another_tenant_is_refused(client: AsyncTestClient[Any], world: World, kind: str) -> None:
    own, other = world.a.customer, world.b.customer
    body: dict[str, Any] = {"name": "x", "site_id": str(other.site_id)}
    r = await client.post(f"/api/v1/customers/{own.customer_id}/{kind}", json=body, headers=auth(own.key))
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "site_id", "message": f"no site {other.site_id} in this customer"}]


async def test_the_operator_cannot_reach_inside_a_customer(client: AsyncTestClient[Any], world: World) -> None:
    op = auth(world.operator_key)
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}"
    # It may see that the customer exists ...
    assert (await client.get(base, headers=op)).status_code == 200
    # ... but not its plant, keys or audit trail, and cannot mint itself a key inside it.
    for url in (f"{base}/sites", f"{base}/api-keys", f"{base}/audit", f"{base}/users"):
        r = await client.get(url, headers=op)
        assert r.status_code == 403, url
    r = await client.post(f"{base}/api-keys", json={"name": "x", "roles": ["customer_admin"]}, headers=op)
    assert r.status_code == 403


async def test_suspended_organisations_are_locked_out(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    probe = f"/api/v1/customers/{c.customer_id}/sites"
    assert (await client.get(probe, headers=auth(c.key))).status_code == 200
    r = await client.patch(
        f"/api/v1/customers/{c.customer_id}", json={"status": "suspended"}, headers=auth(world.a.key)
    )
    assert r.status_code == 200
    refused = await client.get(probe, headers=auth(c.key))
    assert refused.status_code == 401 and "suspended" in refused.json()["detail"]
    # Its partner can still reach it, to reactivate it.
    assert (await client.get(probe, headers=auth(world.a.key))).status_code == 200
    r = await client.patch(
        f"/api/v1/partners/{world.b.partner_id}", json={"status": "suspended"}, headers=auth(world.operator_key)
    )
    assert r.status_code == 200
    for key in (world.b.key, world.b.customer.key):
        assert (await client.get("/api/v1/customers", headers=auth(key))).status_code == 401
