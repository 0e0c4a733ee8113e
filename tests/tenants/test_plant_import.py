"""Plant onboarding import: dry-run report with row numbers, all-or-nothing, idempotent re-import."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio

GOOD = b"""kind,external_id,name,parent_external_id,timezone,asset_type,criticality
site,P1,Plant One,,Europe/Vienna,,
area,P1-A,Assembly,P1,,,
line,P1-L1,Line 1,P1-A,,,
line,P1-L2,Line 2,P1,,,
asset,P1-R1,Robot 1,P1-L1,,robot,A
asset,P1-C1,Compressor,P1,,compressor,B
"""


async def _import(
    client: AsyncTestClient[Any], t: Tenant, body: bytes, *, dry_run: bool = False, content_type: str = "text/csv"
) -> Any:
    return await client.post(
        f"/api/v1/customers/{t.customer_id}/plant-imports",
        params={"dry_run": str(dry_run).lower()},
        content=body,
        headers={**auth(t.key), "content-type": content_type},
    )


async def _count(client: AsyncTestClient[Any], t: Tenant, kind: str) -> int:
    r = await client.get(f"/api/v1/customers/{t.customer_id}/{kind}", headers=auth(t.key))
    return int(r.json()["total"])


async def _totals(client: AsyncTestClient[Any], t: Tenant) -> dict[str, int]:
    return {k: await _count(client, t, k) for k in ("sites", "areas", "lines", "assets")}


async def test_import_creates_then_is_idempotent(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    before = await _totals(client, t)
    dry = await _import(client, t, GOOD, dry_run=True)
    assert dry.status_code == 200
    assert dry.json()["valid"] is True and dry.json()["applied"] is False
    assert await _totals(client, t) == before  # a dry run writes nothing

    first = await _import(client, t, GOOD)
    assert first.status_code == 200, first.text
    report = first.json()
    assert report["applied"] is True
    assert report["summary"] == {
        "site": {"create": 1, "update": 0, "unchanged": 0},
        "area": {"create": 1, "update": 0, "unchanged": 0},
        "line": {"create": 2, "update": 0, "unchanged": 0},
        "asset": {"create": 2, "update": 0, "unchanged": 0},
    }
    after = await _totals(client, t)
    assert after == {
        "sites": before["sites"] + 1,
        "areas": before["areas"] + 1,
        "lines": before["lines"] + 2,
        "assets": before["assets"] + 2,
    }

    again = await _import(client, t, GOOD)
    assert {k: v["unchanged"] for k, v in again.json()["summary"].items()} == {
        "site": 1,
        "area": 1,
        "line": 2,
        "asset": 2,
    }
    assert await _totals(client, t) == after

    renamed = GOOD.replace(b"Robot 1", b"Welding robot 1")
    changed = await _import(client, t, renamed)
    assert changed.json()["summary"]["asset"] == {"create": 0, "update": 1, "unchanged": 1}
    assets = (
        await client.get(f"/api/v1/customers/{t.customer_id}/assets", params={"q": "Welding"}, headers=auth(t.key))
    ).json()["items"]
    assert [a["external_id"] for a in assets] == ["P1-R1"]
    assert await _totals(client, t) == after

    trail = (await client.get(f"/api/v1/customers/{t.customer_id}/audit", headers=auth(t.key))).json()
    imports = [e for e in trail if e["action"] == "plant.imported"]
    assert len(imports) == 2  # the unchanged re-import records nothing
    assert imports[0]["after"]["updated"][0]["changes"] == {"name": ["Robot 1", "Welding robot 1"]}


async def test_import_links_parents_and_sites(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    assert (await _import(client, t, GOOD)).status_code == 200
    lines = {
        x["external_id"]: x
        for x in (await client.get(f"/api/v1/customers/{t.customer_id}/lines", headers=auth(t.key))).json()["items"]
    }
    sites = {
        x["external_id"]: x
        for x in (await client.get(f"/api/v1/customers/{t.customer_id}/sites", headers=auth(t.key))).json()["items"]
    }
    areas = {
        x["external_id"]: x
        for x in (await client.get(f"/api/v1/customers/{t.customer_id}/areas", headers=auth(t.key))).json()["items"]
    }
    assert lines["P1-L1"]["area_id"] == areas["P1-A"]["id"]
    assert lines["P1-L1"]["site_id"] == sites["P1"]["id"]
    assert lines["P1-L2"]["area_id"] is None and lines["P1-L2"]["site_id"] == sites["P1"]["id"]
    assert sites["P1"]["timezone"] == "Europe/Vienna"


async def test_row_errors_are_reported_and_nothing_is_written(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    bad = b"""kind,external_id,name,parent_external_id,timezone,criticality
site,P2,Plant Two,,Mars/Olympus,
area,P2-A,Area,P2,,
line,P2-L,Line,NOPE,,
asset,P2-X,,P2-L,,Z
widget,W1,Widget,P2,,
area,P2-A,Area again,P2,,
site,P3,Good plant,,UTC,
"""
    before = await _totals(client, t)
    dry = await _import(client, t, bad, dry_run=True)
    assert dry.status_code == 200
    errors = dry.json()["errors"]
    assert dry.json()["valid"] is False
    assert [(e["row"], e["field"]) for e in errors] == [
        (2, "timezone"),
        (3, "parent_external_id"),
        (4, "parent_external_id"),
        (5, "name"),
        (5, "criticality"),
        (6, "kind"),
        (7, "external_id"),
    ]
    assert errors[1]["message"] == "its parent 'P2' on row 2 has errors"
    assert "no area or site with external_id 'NOPE'" in errors[2]["message"]
    assert "already appears on row 3" in errors[6]["message"]

    real = await _import(client, t, bad)
    assert real.status_code == 422
    assert real.headers["content-type"].startswith("application/problem+json")
    assert real.json()["detail"] == "the import has 7 error(s); nothing was changed"
    assert len(real.json()["errors"]) == 7
    assert await _totals(client, t) == before  # the valid rows (P2-A, P3) were not written either


async def test_missing_parent_in_the_real_run_is_422(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    r = await _import(client, t, b"kind,external_id,name,parent_external_id\nasset,X1,Pump,GHOST-LINE\n")
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {
            "row": 2,
            "field": "parent_external_id",
            "message": "no line or site with external_id 'GHOST-LINE' in this file or this customer",
        }
    ]


async def test_parents_from_the_database_and_other_tenants(client: AsyncTestClient[Any], world: World) -> None:
    t, other = world.a.customer, world.b.customer
    ok = await _import(client, t, f"kind,external_id,name,parent_external_id\nasset,NEW-1,Pump,{t.slug}-L\n".encode())
    assert ok.status_code == 200, ok.text
    # The other tenant's line is invisible: the same reference from there is a missing parent.
    foreign = await _import(
        client, t, f"kind,external_id,name,parent_external_id\nasset,NEW-2,Pump,{other.slug}-L\n".encode()
    )
    assert foreign.status_code == 422


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b'kind,external_id,name\nsite,"S1,Broken\n', "text/csv", 422, "malformed CSV"),
        ("kind,external_id,name\nsite,S1,Gie\xdferei\n".encode("latin-1"), "text/csv", 422, "not UTF-8"),
        (b"kind,name\nsite,Plant\n", "text/csv", 422, "missing column(s) external_id"),
        (b"kind,external_id,name,colour\nsite,S1,P,red\n", "text/csv", 422, "unknown column(s) colour"),
        (b"", "text/csv", 422, "the file is empty"),
        (b'[{"kind": "site", "external_id": "S1"', "application/json", 422, "malformed JSON"),
        (b'{"sites": []}', "application/json", 422, "list of rows"),
        (b"<xml/>", "application/xml", 415, "unsupported content type"),
        (b"\x00\x01\x02binary", "text/csv", 422, "NUL bytes"),
    ],
)
async def test_bad_files_are_clear_4xx(
    client: AsyncTestClient[Any], world: World, body: bytes, content_type: str, status: int, fragment: str
) -> None:
    t = world.a.customer
    before = await _totals(client, t)
    for dry_run in (True, False):
        r = await _import(client, t, body, dry_run=dry_run, content_type=content_type)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert fragment in r.json()["detail"]
    assert await _totals(client, t) == before


async def test_json_import_and_row_shape_errors(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    rows = [
        {"kind": "site", "external_id": "J1", "name": "Json plant", "timezone": "Asia/Tokyo"},
        {"kind": "line", "external_id": "J1-L", "name": "Line", "parent_external_id": "J1"},
    ]
    ok = await _import(client, t, json.dumps({"rows": rows}).encode(), content_type="application/json")
    assert ok.status_code == 200 and ok.json()["summary"]["line"]["create"] == 1
    bad = [
        {"kind": "site", "external_id": "J2", "name": "x", "extra": 1},
        "nope",
        {"kind": "site", "external_id": ["x"], "name": "y"},
    ]
    r = await _import(client, t, json.dumps(bad).encode(), content_type="application/json", dry_run=True)
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(1, "extra"), (2, None), (3, None)]


async def test_csv_row_with_too_many_values(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    r = await _import(client, t, b"kind,external_id,name\nsite,S9,Plant,surplus\n", dry_run=True)
    assert r.json()["errors"] == [{"row": 2, "field": None, "message": "1 more value(s) than the header has columns"}]


async def test_moving_a_node_to_another_site_is_refused(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    assert (await _import(client, t, GOOD)).status_code == 200
    moved = GOOD + b"site,P9,Plant Nine,,UTC,,\n"
    moved = moved.replace(b"asset,P1-C1,Compressor,P1,", b"asset,P1-C1,Compressor,P9,")
    r = await _import(client, t, moved, dry_run=True)
    assert r.json()["errors"] == [
        {
            "row": 7,
            "field": "parent_external_id",
            "message": "asset 'P1-C1' would move to another site; import cannot move nodes between sites",
        }
    ]


async def test_reimport_with_fewer_columns_keeps_the_rest(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    full = b"""kind,external_id,name,parent_external_id,timezone,description,manufacturer,criticality
site,K1,Kyoto,,Asia/Tokyo,Stamping,,
line,K1-L,Line,K1,,,,
asset,K1-A,Press,K1-L,,,Komatsu,A
"""
    assert (await _import(client, t, full)).status_code == 200
    thin = b"kind,external_id,name,parent_external_id\nsite,K1,Kyoto,\nline,K1-L,Line,K1\nasset,K1-A,Press,K1-L\n"
    again = await _import(client, t, thin)
    assert {k: v["unchanged"] for k, v in again.json()["summary"].items() if v["unchanged"]} == {
        "site": 1,
        "line": 1,
        "asset": 1,
    }
    site = (
        await client.get(f"/api/v1/customers/{t.customer_id}/sites", params={"q": "Kyoto"}, headers=auth(t.key))
    ).json()["items"][0]
    assert (site["timezone"], site["description"]) == ("Asia/Tokyo", "Stamping")
    asset = (
        await client.get(f"/api/v1/customers/{t.customer_id}/assets", params={"q": "Press"}, headers=auth(t.key))
    ).json()["items"]
    assert [(a["manufacturer"], a["criticality"]) for a in asset if a["external_id"] == "K1-A"] == [("Komatsu", "A")]


async def test_moving_an_asset_to_another_line_is_an_update(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    assert (await _import(client, t, GOOD)).status_code == 200
    moved = GOOD.replace(b"asset,P1-R1,Robot 1,P1-L1,", b"asset,P1-R1,Robot 1,P1-L2,")
    dry = await _import(client, t, moved, dry_run=True)
    assert dry.json()["summary"]["asset"] == {"create": 0, "update": 1, "unchanged": 1}
    assert (await _import(client, t, moved)).json()["summary"]["asset"]["update"] == 1
    lines = {
        x["external_id"]: x["id"]
        for x in (await client.get(f"/api/v1/customers/{t.customer_id}/lines", headers=auth(t.key))).json()["items"]
    }
    assets = {
        x["external_id"]: x
        for x in (await client.get(f"/api/v1/customers/{t.customer_id}/assets", headers=auth(t.key))).json()["items"]
    }
    assert assets["P1-R1"]["line_id"] == lines["P1-L2"]


async def test_hostile_json_is_a_clear_422(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    for body in (b"[" * 100_000 + b"]" * 100_000, b'[{"kind": "site", "external_id": ' + b"9" * 5000 + b"}]"):
        r = await _import(client, t, body, content_type="application/json", dry_run=True)
        assert r.status_code == 422, r.text[:200]
        assert "malformed JSON" in r.json()["detail"]


async def test_large_import_in_one_go(client: AsyncTestClient[Any], world: World) -> None:
    t = world.a.customer
    rows = ["kind,external_id,name,parent_external_id", "site,BIG,Big plant,", "line,BIG-L,Line,BIG"]
    rows += [f"asset,BIG-A{i},Asset {i},BIG-L" for i in range(6_000)]
    r = await _import(client, t, ("\n".join(rows) + "\n").encode())
    assert r.status_code == 200, r.text[:300]
    assert r.json()["summary"]["asset"]["create"] == 6_000
    again = await _import(client, t, ("\n".join(rows) + "\n").encode(), dry_run=True)
    assert again.json()["summary"]["asset"]["unchanged"] == 6_000
