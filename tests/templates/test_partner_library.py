"""A partner's template library: forks remember their upstream, drafts are checked, published
versions never change, and nobody outside the partner (and its customers) sees any of it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from andon.platform.config.settings import Settings
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.templates_catalog.library.models import PartnerTemplate
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


def _base(world: World, which: str = "a") -> str:
    org = getattr(world, which)
    return f"/api/v1/partners/{org.partner_id}/templates"


async def _fork(api: httpx.AsyncClient, world: World, **body: Any) -> dict[str, Any]:
    r = await api.post(
        _base(world) + "/forks", json={"template": "unplanned-downtime-escalation", **body}, headers=auth(world.a.key)
    )
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


async def _yaml(api: httpx.AsyncClient, world: World) -> str:
    shown = await api.get("/api/v1/templates/unplanned-downtime-escalation", headers=auth(world.a.key))
    text: str = shown.json()["yaml"]
    return text


async def test_a_fork_is_a_draft_until_published_and_then_offered_to_the_partners_customers(
    api: httpx.AsyncClient, world: World
) -> None:
    fork = await _fork(api, world, key="downtime-northwind")
    assert (fork["key"], fork["upstream_key"], fork["upstream_version"]) == (
        "downtime-northwind",
        "unplanned-downtime-escalation",
        "1.0.0",
    )
    assert (fork["draft"], fork["latest_published"], fork["upstream_newer"]) == ("1.0.0", None, None)

    def partner_sources(listing: list[dict[str, Any]]) -> list[str]:
        return [t["key"] for t in listing if t["source"] == "partner"]

    customer_a = auth(world.a.customer.key)
    assert partner_sources((await api.get("/api/v1/templates/", headers=customer_a)).json()) == []
    published = await api.post(f"{_base(world)}/{fork['id']}/publish", headers=auth(world.a.key))
    assert published.status_code == 200, published.text
    assert published.json()["latest_published"] == "1.0.0" and published.json()["draft"] is None
    assert partner_sources((await api.get("/api/v1/templates/", headers=customer_a)).json()) == ["downtime-northwind"]
    assert partner_sources((await api.get("/api/v1/templates/", headers=auth(world.a.key))).json()) == [
        "downtime-northwind"
    ]

    # The other partner and its customer see none of it, and cannot reach the library at all.
    assert partner_sources((await api.get("/api/v1/templates/", headers=auth(world.b.customer.key))).json()) == []
    assert partner_sources((await api.get("/api/v1/templates/", headers=auth(world.b.key))).json()) == []
    for method, path in (
        ("GET", _base(world) + "/"),
        ("GET", f"{_base(world)}/{fork['id']}"),
        ("POST", _base(world) + "/forks"),
    ):
        r = await api.request(method, path, headers=auth(world.b.key), json={"template": "shift-handover"})
        assert r.status_code == 404, (method, path, r.text)
    # A customer reads its partner's offer through the catalog, but does not edit the library.
    r = await api.post(_base(world) + "/forks", headers=customer_a, json={"template": "shift-handover"})
    assert r.status_code in (403, 404)


async def test_drafts_are_checked_published_versions_never_change_and_versions_compare(
    api: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    key = auth(world.a.key)
    fork = await _fork(api, world)
    base = f"{_base(world)}/{fork['id']}"
    assert (await api.post(base + "/publish", headers=key)).status_code == 200
    assert (await api.post(base + "/publish", headers=key)).status_code == 409  # no draft left

    text = await _yaml(api, world)
    broken = await api.put(
        base + "/draft", json={"yaml": text.replace("default: HIGH", "default: URGENT")}, headers=key
    )
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["field"] == "parameters.properties.work_order_priority.default"
    assert broken.json()["errors"][0]["line"] > 1
    same = await api.put(base + "/draft", json={"yaml": text}, headers=key)
    assert same.status_code == 422 and "1.0.0 is already published" in same.text
    other = await api.put(
        base + "/draft",
        json={"yaml": text.replace("template: unplanned-downtime-escalation", "template: something-else")},
        headers=key,
    )
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "template"

    changed = text.replace("version: 1.0.0", "version: 1.1.0").replace("default: HIGH", "default: MEDIUM")
    saved = await api.put(base + "/draft", json={"yaml": changed}, headers=key)
    assert saved.status_code == 200, saved.text
    assert saved.json()["draft"] == "1.1.0"
    diff = (await api.get(base + "/diff", params={"base": "1.0.0", "head": "draft"}, headers=key)).json()
    assert (
        "-version: 1.0.0" in diff["diff"]
        and "+version: 1.1.0" in diff["diff"]
        and "+      default: MEDIUM" in diff["diff"]
    )
    assert (await api.get(base + "/diff", params={"base": "upstream", "head": "1.0.0"}, headers=key)).json()[
        "diff"
    ] == ""
    assert (await api.get(base + "/diff", params={"base": "9.9.9", "head": "draft"}, headers=key)).status_code == 404

    assert (await api.post(base + "/publish", headers=key)).json()["latest_published"] == "1.1.0"
    deprecated = (await api.post(base + "/versions/1.0.0/deprecate", headers=key)).json()
    assert [(v["version"], v["status"]) for v in deprecated["versions"]] == [
        ("1.0.0", "deprecated"),
        ("1.1.0", "published"),
    ]
    # An older number is refused at publication.
    older = changed.replace("version: 1.1.0", "version: 1.0.5")
    assert (await api.put(base + "/draft", json={"yaml": older}, headers=key)).status_code == 200
    refused = await api.post(base + "/publish", headers=key)
    assert refused.status_code == 422 and "not newer than the published 1.1.0" in refused.text

    # When the catalog has moved past the version forked, the library says so.
    owner = create_engine(settings.database, url=settings.database.owner_url)  # past row-level security
    try:
        async with create_sessionmaker(owner)() as session, session.begin():
            await session.execute(update(PartnerTemplate).values(upstream_version="0.9.0"))
    finally:
        await owner.dispose()
    again = (await api.get(base, headers=key)).json()
    assert again["upstream_newer"] == "1.0.0"

    audit = (await api.get("/api/v1/audit", headers=key)).json()
    actions = [e["action"] for e in audit]
    assert {"template.forked", "template.published", "template.draft_saved", "template.deprecated"} <= set(actions)
