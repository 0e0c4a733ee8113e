"""Deny by default: every route declares a known permission, or is one of the few public ones."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from andon.platform.auth.guards import require_permission
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.config.settings import Settings
from andon.platform.http.app import OPENAPI_PATH, create_app

pytestmark = pytest.mark.anyio

# Anyone may reach these: health, the API docs and the event catalogue (documentation too), partner
# logos, and the pages that sign people in.
PUBLIC_PREFIXES = (
    "/health/",
    OPENAPI_PATH,
    "/api/v1/event-types",
    "/brand/",
    "/static/",
    "/login",
    "/auth/oidc/",
    "/invitations/",
    "/password-reset",
    "/dev/mailbox",
    # Vendors deliver webhooks here with no key: each delivery proves its sender by its signature.
    "/hooks/",
    # Stripe's events, each proven by its Stripe-Signature.
    "/api/v1/billing/stripe/webhook",
    # Scrapers present the metrics token (checked by the route), not an API key.
    "/metrics",
)
# Anyone signed in may reach these: their own account, nobody else's.
OWN_ACCOUNT_PREFIXES = ("/api/v1/me", "/account", "/logout")


def _handlers(app: Litestar) -> list[tuple[str, HTTPRouteHandler]]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if isinstance(handler, HTTPRouteHandler) and handler.http_methods != {"OPTIONS"}:
                found.append((route.path, handler))
    return found


def test_every_route_is_guarded(settings: Settings) -> None:
    app = create_app(settings)
    handlers = _handlers(app)
    assert len(handlers) > 40
    unguarded = []
    for path, handler in handlers:
        assert require_permission in [getattr(g, "func", g) for g in handler.resolve_guards()], path
        if handler.opt.get("public"):
            if not path.startswith(PUBLIC_PREFIXES) and path != "/":  # "/" only redirects
                unguarded.append(f"{path} is public but not health, docs, logos or sign-in")
            continue
        if handler.opt.get("authenticated"):
            if not path.startswith(OWN_ACCOUNT_PREFIXES):
                unguarded.append(f"{path} is open to anyone signed in but is not their own account")
            continue
        permission = handler.opt.get("permission")
        if permission not in ALL_PERMISSIONS:
            unguarded.append(f"{sorted(handler.http_methods)} {path} declares no known permission: {permission!r}")
    assert unguarded == []


async def test_route_without_rule_is_closed_even_to_the_operator(settings: Settings) -> None:
    """The guard itself refuses a route that forgot its permission (not only the test above)."""
    from litestar import get

    @get("/api/v1/forgotten", sync_to_thread=False)
    def forgotten() -> dict[str, str]:
        return {"leak": "yes"}

    app = create_app(settings)
    app.register(forgotten)
    async with AsyncTestClient(app=app) as client:
        r = await client.get("/api/v1/forgotten")
    assert r.status_code == 403
    assert "leak" not in r.text


async def test_anonymous_is_refused_everywhere_but_public(client: AsyncTestClient[Any], app: Litestar) -> None:
    for path, handler in _handlers(app):
        if handler.opt.get("public") or "{" in path:
            continue
        if not path.startswith("/api/"):
            continue  # pages redirect people to sign in instead (tested with the sign-in flow)
        method = sorted(handler.http_methods)[0]
        r = await client.request(method, path)
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"].startswith("Bearer")
