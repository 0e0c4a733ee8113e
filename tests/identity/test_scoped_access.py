"""Grants at a site see only that site; a partner acts inside a customer only while the customer
allows it, and every such action is recorded as the partner acting in that customer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from litestar import Litestar

from tests.identity.conftest import browser_on
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"


async def test_site_level_grant_sees_one_site(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}"
    other = (await api.post(f"{base}/sites", json={"name": "Second plant"}, headers=auth(c.key))).json()
    await api.post(f"{base}/assets", json={"site_id": other["id"], "name": "Far press"}, headers=auth(c.key))
    r = await api.post(
        f"{base}/users",
        json={
            "email": "tech@acme.example",
            "display_name": "Tech",
            "password": PASSWORD,
            "grants": [{"role": "technician", "site_id": str(c.site_id)}],
        },
        headers=auth(c.key),
    )
    assert r.status_code == 201, r.text
    assert r.json()["grants"] == [
        {"role": "technician", "scope_kind": "site", "scope_id": str(c.site_id), "source": "manual"}
    ]
    bad = await api.post(
        f"{base}/users",
        json={
            "email": "x@acme.example",
            "display_name": "X",
            "password": PASSWORD,
            "grants": [{"role": "technician", "site_id": str(world.b.customer.site_id)}],
        },
        headers=auth(c.key),
    )
    assert bad.status_code == 422 and "is not a site of this customer" in bad.json()["detail"]
    async with browser_on(app, "andon.test") as tech:
        page = await tech.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf
        await tech.post(
            "/login", data={"csrf_token": csrf.group(1), "email": "tech@acme.example", "password": PASSWORD}
        )
        sites = (await tech.get(f"{base}/sites")).json()
        assert [s["id"] for s in sites["items"]] == [str(c.site_id)] and sites["total"] == 1
        assets = (await tech.get(f"{base}/assets")).json()["items"]
        assert {a["site_id"] for a in assets} == {str(c.site_id)}
        for event_id, site in (("here", str(c.site_id)), ("far", other["id"]), ("nowhere", None)):
            event = {
                "specversion": "1.0",
                "id": event_id,
                "source": "urn:test",
                "type": "dev.andon.machine.alarm.v1",
                "data": {"code": "E1", "message": "m"},
                **({"siteid": site} if site else {}),
            }
            headers = {**auth(c.key), "content-type": "application/cloudevents+json"}
            assert (await api.post("/api/v1/events", json=event, headers=headers)).status_code == 201
        events = (await tech.get("/api/v1/events")).json()
        assert [e["event_id"] for e in events["items"]] == ["here"] and events["total"] == 1
        assert (await tech.get(f"{base}/sites/{other['id']}")).status_code == 404


async def test_customer_controls_its_partners_access(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    customer, partner = auth(c.key), auth(world.a.key)
    probe = f"/api/v1/customers/{c.customer_id}/sites"
    assert (await api.get(probe, headers=partner)).status_code == 200

    # Only the customer decides.
    r = await api.patch(f"/api/v1/customers/{c.customer_id}", json={"partner_access": True}, headers=partner)
    assert r.status_code == 403 and "only the customer decides" in r.json()["detail"]

    off = await api.patch(f"/api/v1/customers/{c.customer_id}", json={"partner_access": False}, headers=customer)
    assert off.status_code == 200 and off.json()["partner_access"] is False
    refused = await api.get(probe, headers=partner)
    assert refused.status_code == 403 and "has not granted its partner access" in refused.json()["detail"]
    assert (await api.get(probe, headers=customer)).status_code == 200  # the customer itself is unaffected

    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    on = await api.patch(
        f"/api/v1/customers/{c.customer_id}",
        json={"partner_access": True, "partner_access_until": soon},
        headers=customer,
    )
    assert on.status_code == 200
    renamed = await api.patch(f"{probe}/{c.site_id}", json={"name": "Renamed by partner"}, headers=partner)
    assert renamed.status_code == 200
    trail = (await api.get(f"/api/v1/customers/{c.customer_id}/audit", headers=customer)).json()
    entry = next(e for e in trail if e["action"] == "site.updated")
    assert entry["actor"]["org"] == "partner" and entry["actor"]["acting_in_customer"] == str(c.customer_id)
    changed = next(e for e in trail if e["action"] == "customer.updated")
    assert changed["after"]["partner_access"] is True  # the grant itself is in the customer's trail

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    await api.patch(f"/api/v1/customers/{c.customer_id}", json={"partner_access_until": past}, headers=customer)
    assert (await api.get(probe, headers=partner)).status_code == 403  # expired


async def test_site_grants_are_plant_roles_only(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    url = f"/api/v1/customers/{c.customer_id}/users"
    base = {"email": "s@acme.example", "display_name": "S", "password": PASSWORD}
    admin_at_site = await api.post(
        url, json={**base, "grants": [{"role": "customer_admin", "site_id": str(c.site_id)}]}, headers=auth(c.key)
    )
    assert admin_at_site.status_code == 422 and "cannot be limited to a site" in admin_at_site.json()["detail"]
    mixed = await api.post(
        url,
        json={**base, "grants": [{"role": "technician", "site_id": str(c.site_id)}, {"role": "finance"}]},
        headers=auth(c.key),
    )
    assert mixed.status_code == 422 and "not both" in mixed.json()["detail"]


async def test_partner_invites_but_never_sets_passwords(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    url = f"/api/v1/customers/{c.customer_id}/users"
    r = await api.post(
        url,
        json={
            "email": "p@acme.example",
            "display_name": "P",
            "password": PASSWORD,
            "grants": [{"role": "customer_admin"}],
        },
        headers=auth(world.a.key),
    )
    assert r.status_code == 422 and "invited" in r.json()["detail"]
    invited = await api.post(
        url,
        json={"email": "p@acme.example", "display_name": "P", "grants": [{"role": "customer_admin"}]},
        headers=auth(world.a.key),
    )
    assert invited.status_code == 201 and invited.json()["status"] == "invited"


async def test_partner_people_can_be_read_and_disabled(api: httpx.AsyncClient, world: World) -> None:
    url = f"/api/v1/partners/{world.a.partner_id}/users"
    created = await api.post(
        url,
        json={
            "email": "leaver@alpha.example",
            "display_name": "Leaver",
            "password": PASSWORD,
            "grants": [{"role": "partner_support"}],
        },
        headers=auth(world.a.key),
    )
    assert created.status_code == 201, created.text
    uid = created.json()["id"]
    assert (await api.get(f"{url}/{uid}", headers=auth(world.a.key))).json()["email"] == "leaver@alpha.example"
    off = await api.patch(f"{url}/{uid}", json={"status": "disabled"}, headers=auth(world.a.key))
    assert off.status_code == 200 and off.json()["status"] == "disabled"
    assert (await api.get(f"{url}/{uid}", headers=auth(world.b.key))).status_code == 404
