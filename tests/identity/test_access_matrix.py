"""The persona matrix: for every role and every route, the guard's allow/deny matches the role's
permission set. Generated from the route table and the role catalogue, so a new route or role is
covered the moment it exists, and a route without a decision fails ``test_route_guards``."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from andon.platform.auth.rbac import ROLES
from andon.platform.tenancy.principal import OrgKind
from tests.identity.conftest import browser_on
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


async def _key_for(api: httpx.AsyncClient, world: World, role: str) -> str:
    kind = ROLES[role].org_kind
    if kind is OrgKind.PLATFORM:
        url, issuer = "/api/v1/api-keys", world.operator_key
    elif kind is OrgKind.PARTNER:
        url, issuer = f"/api/v1/partners/{world.a.partner_id}/api-keys", world.operator_key
    else:
        url, issuer = f"/api/v1/customers/{world.a.customer.customer_id}/api-keys", world.a.key
    r = await api.post(url, json={"name": f"matrix {role}", "roles": [role]}, headers=auth(issuer))
    assert r.status_code == 201, (role, r.text)
    return str(r.json()["key"])


def _routes(app: Litestar) -> list[tuple[str, str, HTTPRouteHandler]]:
    found: list[tuple[str, str, HTTPRouteHandler]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(("/api/v1/", "/partner/")):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append((method, route.path, handler))
    return found


def _concrete(path: str, method: str, world: World) -> str:
    params = re.findall(r"\{(\w+):\w+\}", path)
    kinds = dict(re.findall(r"\{(\w+):(\w+)\}", path))
    values = {
        "customer_id": str(world.a.customer.customer_id),
        "partner_id": str(world.a.partner_id),
        "node_id": str(world.a.customer.site_id),
    }
    item_route = path.endswith("}")
    for i, name in enumerate(params):
        last = i == len(params) - 1
        # Unsafe calls on an item aim at one that does not exist, so an allowed call changes nothing;
        # collection calls send an empty body, which validation refuses after the guard has decided.
        target = last and item_route and method in UNSAFE
        value = str(uuid.uuid4()) if target or name not in values else values[name]
        if kinds[name] == "int":
            value = "0"  # a number the route accepts (a uuid would not match it at all)
        path = re.sub(r"\{" + name + r":\w+\}", value, path)
    return path


def _expected_allowed(role: str, method: str, path: str, handler: HTTPRouteHandler) -> bool:
    if handler.opt.get("authenticated") or handler.opt.get("public"):
        return True
    allowed = handler.opt["permission"] in ROLES[role].permissions
    inside_customer = path.startswith("/api/v1/customers/{customer_id:uuid}/")
    if ROLES[role].org_kind is OrgKind.PLATFORM and inside_customer:
        return False  # the operator never acts inside a customer, whatever its permissions
    if path.startswith("/partner/") and ROLES[role].org_kind is not OrgKind.PARTNER:
        return False  # the partner console is for partner staff only
    kinds = handler.opt.get("org_kinds")
    if kinds and ROLES[role].org_kind.value not in kinds:
        return False  # a route for some kinds of organisation only (the operator's wholesale books)
    return allowed


async def test_every_role_on_every_route(app: Litestar, world: World) -> None:
    async with browser_on(app, "andon.test") as api:
        keys = {role: await _key_for(api, world, role) for role in ROLES}
        routes = _routes(app)
        assert len(routes) > 70
        wrong: list[str] = []
        for role, key in keys.items():
            for method, path, handler in routes:
                url = _concrete(path, method, world)
                body: Any = {} if method in {"POST", "PUT", "PATCH"} else None
                r = await api.request(method, url, json=body, headers=auth(key))
                allowed = _expected_allowed(role, method, path, handler)
                if (r.status_code == 403) == allowed or r.status_code in (401, 500):
                    wrong.append(
                        f"{role:18} {method:6} {path} -> {r.status_code} (expected {'allow' if allowed else 'deny'})"
                    )
        assert wrong == [], "\n".join(wrong)
