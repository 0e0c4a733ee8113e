"""Bad input gets a clear RFC 9457 problem+json 4xx that names what is wrong, never a stack trace."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from andon.platform.config.settings import Settings
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["detail"]
    assert "Traceback" not in r.text
    return body


async def test_wrong_type_names_the_field(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    r = await client.post(f"/api/v1/customers/{c.customer_id}/sites", json={"name": 42}, headers=auth(c.key))
    body = _problem(r, 422)
    assert body["errors"] == [{"field": "name", "source": "body", "message": "Expected `str`, got `int`"}]


async def test_unknown_field_is_refused(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    r = await client.post(
        f"/api/v1/customers/{c.customer_id}/sites", json={"name": "x", "colour": "red"}, headers=auth(c.key)
    )
    body = _problem(r, 422)
    assert body["errors"][0]["message"] == "Object contains unknown field `colour`"


async def test_constraint_violation_and_bad_time_zone(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    r = await client.post(f"/api/v1/customers/{c.customer_id}/sites", json={"name": ""}, headers=auth(c.key))
    assert _problem(r, 422)["errors"][0]["field"] == "name"
    r = await client.post(
        f"/api/v1/customers/{c.customer_id}/sites", json={"name": "x", "timezone": "Mars/Base"}, headers=auth(c.key)
    )
    assert _problem(r, 422)["errors"] == [{"field": "timezone", "message": "unknown time zone"}]


async def test_malformed_json(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    r = await client.post(
        f"/api/v1/customers/{c.customer_id}/sites",
        content=b'{"name": ',
        headers={**auth(c.key), "content-type": "application/json"},
    )
    assert _problem(r, 400)["title"] == "Bad Request"


async def test_oversized_body_is_413(settings: Settings, world: World) -> None:
    from andon.platform.http.app import create_app

    settings.security.max_body_bytes = 1024
    app = create_app(settings)
    c = world.a.customer
    async with AsyncTestClient(app=app) as small:
        r = await small.post(
            f"/api/v1/customers/{c.customer_id}/plant-imports",
            content=b"x" * 5000,
            headers={**auth(c.key), "content-type": "text/csv"},
        )
    _problem(r, 413)
    await app.state.engine.dispose()


async def test_bad_query_parameter(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    r = await client.get(f"/api/v1/customers/{c.customer_id}/sites?limit=100000", headers=auth(c.key))
    assert _problem(r, 422)["errors"] == [{"field": "limit", "source": "query", "message": "Expected `int` <= 500"}]
    r = await client.get(f"/api/v1/customers/{c.customer_id}/sites?site_id=zz", headers=auth(c.key))
    assert _problem(r, 422)["errors"] == [{"field": "site_id", "source": "query", "message": "Invalid UUID"}]
    r = await client.get("/api/v1/customers/not-a-uuid", headers=auth(c.key))
    _problem(r, 404)


async def test_unknown_route_and_method(client: AsyncTestClient[Any], world: World) -> None:
    _problem(await client.get("/api/v1/nothing-here", headers=auth(world.a.key)), 404)
    _problem(await client.put("/api/v1/customers", headers=auth(world.a.key)), 405)


async def test_permission_denied_is_403_problem(client: AsyncTestClient[Any], world: World) -> None:
    body = _problem(
        await client.post("/api/v1/partners", json={"slug": "x1", "name": "X"}, headers=auth(world.a.key)), 403
    )
    assert "partners:write" in body["detail"]


async def test_conflicts_are_409(client: AsyncTestClient[Any], world: World) -> None:
    c = world.a.customer
    r = await client.post(
        f"/api/v1/customers/{c.customer_id}/sites",
        json={"name": "Dup", "external_id": f"{c.slug}-S"},
        headers=auth(c.key),
    )
    assert _problem(r, 409)["errors"] == [{"field": "external_id", "message": "already in use"}]
    r = await client.post(
        "/api/v1/customers", json={"slug": world.b.customer.slug, "name": "Copy"}, headers=auth(world.a.key)
    )
    _problem(r, 409)


async def test_hostile_values_are_4xx_not_500(client: AsyncTestClient[Any], world: World, settings: Settings) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}"
    naive = await client.post(
        f"{base}/api-keys",
        json={"name": "n", "roles": ["ingest"], "expires_at": "2031-01-01T00:00:00"},
        headers=auth(c.key),
    )
    assert _problem(naive, 422)["errors"][0]["field"] == "expires_at"
    _problem(await client.get(f"{base}/sites", params={"offset": "99999999999999999999"}, headers=auth(c.key)), 422)
    nul = await client.post(f"{base}/sites", json={"name": "a\u0000b"}, headers=auth(c.key))
    # SQLite stores a NUL in text; PostgreSQL cannot, and says so with a 422 instead of failing.
    expected = 422 if settings.database.is_postgres else 201
    assert nul.status_code == expected
    long_name = await client.post(
        f"{base}/api-keys", json={"name": "k" * 200, "roles": ["customer_admin"]}, headers=auth(c.key)
    )
    again = await client.post(
        f"{base}/api-keys", json={"name": "x", "roles": ["ingest"]}, headers=auth(long_name.json()["key"])
    )
    assert again.status_code == 201
