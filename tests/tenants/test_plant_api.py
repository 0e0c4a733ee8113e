"""The plant hierarchy through the API: create, update, list with filters, and the rules that keep it
consistent (parents in the same site, unique external ids, no orphaned children)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


async def test_full_hierarchy_lifecycle(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    h = auth(c.key)
    base = f"/api/v1/customers/{c.customer_id}"
    site = (
        await client.post(
            f"{base}/sites", json={"name": "Linz", "timezone": "Europe/Vienna", "external_id": "LNZ"}, headers=h
        )
    ).json()
    area = (await client.post(f"{base}/areas", json={"site_id": site["id"], "name": "Paint"}, headers=h)).json()
    line = (
        await client.post(
            f"{base}/lines", json={"site_id": site["id"], "area_id": area["id"], "name": "Paint 1"}, headers=h
        )
    ).json()
    asset = await client.post(
        f"{base}/assets",
        json={"site_id": site["id"], "line_id": line["id"], "name": "Oven", "criticality": "A", "manufacturer": "Dürr"},
        headers=h,
    )
    assert asset.status_code == 201 and asset.json()["manufacturer"] == "Dürr"
    cal = await client.post(
        f"{base}/shift-calendars",
        json={
            "site_id": site["id"],
            "name": "3 shifts",
            "shifts": [
                {"name": "A", "start": "06:00", "end": "14:00", "days": [1, 2, 3, 4, 5]},
                {"name": "B", "start": "14:00", "end": "22:00"},
            ],
        },
        headers=h,
    )
    assert cal.status_code == 201
    assert cal.json()["timezone"] == "Europe/Vienna"  # inherited from the site
    assert cal.json()["shifts"][1]["days"] == [1, 2, 3, 4, 5, 6, 7]

    only_site = (await client.get(f"{base}/lines", params={"site_id": site["id"]}, headers=h)).json()
    assert [x["id"] for x in only_site["items"]] == [line["id"]] and only_site["total"] == 1
    searched = (await client.get(f"{base}/assets", params={"q": "ove"}, headers=h)).json()
    assert [x["name"] for x in searched["items"]] == ["Oven"]
    paged = (await client.get(f"{base}/sites", params={"limit": 1, "offset": 1}, headers=h)).json()
    assert (paged["total"], len(paged["items"]), paged["limit"], paged["offset"]) == (2, 1, 1, 1)

    patched = await client.patch(
        f"{base}/lines/{line['id']}", json={"area_id": None, "name": "Paint line 1"}, headers=h
    )
    assert patched.status_code == 200 and patched.json()["area_id"] is None

    # Deleting a site with children is refused with what to do; bottom-up deletion works.
    refused = await client.delete(f"{base}/sites/{site['id']}", headers=h)
    assert refused.status_code == 409
    assert refused.json()["detail"] == "site 'Linz' still has 1 area(s); delete or move them first"
    for kind, obj in (
        ("shift-calendars", cal.json()),
        ("assets", asset.json()),
        ("lines", line),
        ("areas", area),
        ("sites", site),
    ):
        assert (await client.delete(f"{base}/{kind}/{obj['id']}", headers=h)).status_code == 204, kind
    assert (await client.get(f"{base}/sites/{site['id']}", headers=h)).status_code == 404


async def test_links_must_stay_within_one_site(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    h = auth(c.key)
    base = f"/api/v1/customers/{c.customer_id}"
    other_site = (await client.post(f"{base}/sites", json={"name": "Other"}, headers=h)).json()
    r = await client.post(
        f"{base}/lines", json={"site_id": other_site["id"], "area_id": str(c.area_id), "name": "x"}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "area_id", "message": f"area {c.area_id} belongs to another site"}]
    r = await client.patch(
        f"{base}/assets/{c.asset_id}", json={"line_id": "00000000-0000-7000-8000-000000000000"}, headers=h
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "line_id"


async def test_shift_calendar_validation(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    url = f"/api/v1/customers/{c.customer_id}/shift-calendars"
    cases = [
        ({"name": "A", "start": "25:00", "end": "06:00"}, "shifts[0].start"),
        ({"name": "A", "start": "06:00", "end": "14:00", "days": [0]}, "shifts[0].days[0]"),
    ]
    for shift, field in cases:
        r = await client.post(
            url, json={"site_id": str(c.site_id), "name": "x", "shifts": [shift]}, headers=auth(c.key)
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    dup = [{"name": "A", "start": "06:00", "end": "14:00"}, {"name": "A", "start": "14:00", "end": "22:00"}]
    r = await client.post(url, json={"site_id": str(c.site_id), "name": "x", "shifts": dup}, headers=auth(c.key))
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "shifts", "message": "shift names must be unique within a calendar"}
    ]


async def test_customer_admin_edits_itself_but_not_its_status(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    url = f"/api/v1/customers/{c.customer_id}"
    ok = await client.patch(url, json={"name": "Renamed Co"}, headers=auth(c.key))
    assert ok.status_code == 200 and ok.json()["name"] == "Renamed Co"
    assert (await client.patch(url, json={"status": "suspended"}, headers=auth(c.key))).status_code == 403
    assert (await client.delete(url, headers=auth(c.key))).status_code == 403
    suspended = await client.patch(url, json={"status": "suspended"}, headers=auth(world.a.key))
    assert suspended.json()["status"] == "suspended"


async def test_partner_deletes_a_customer_with_its_plant(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    assert (await client.delete(f"/api/v1/customers/{c.customer_id}", headers=auth(world.a.key))).status_code == 204
    assert (await client.get(f"/api/v1/customers/{c.customer_id}", headers=auth(world.a.key))).status_code == 404
    # Its keys went with it.
    assert (await client.get("/api/v1/customers", headers=auth(c.key))).status_code == 401
    # A partner that still has customers cannot be deleted.
    r = await client.delete(f"/api/v1/partners/{world.b.partner_id}", headers=auth(world.operator_key))
    assert r.status_code == 409 and "still has 1 customer(s)" in r.json()["detail"]
