"""Deny by default: a route runs only if it declares a permission the caller holds, or is public.

Routes declare ``opt={"permission": "resource:action"}``, ``opt={"authenticated": True}`` (anyone signed
in, for their own account) or ``opt={"public": True}``; a route with none is refused to everyone (and
fails the route-enumeration test). A route that serves only some kinds of organisation (the operator's
wholesale books, a partner's margin) also names them: ``opt={..., "org_kinds": ("partner",)}``.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection, Request
from litestar.handlers.base import BaseRouteHandler

from andon.platform.auth.middleware import AuthFailure
from andon.platform.http.errors import AuthenticationError, PermissionDeniedError
from andon.platform.tenancy.principal import Principal

# Values of a route's ``org_kinds``.
ONLY_OPERATOR = ("platform",)
ONLY_PARTNERS = ("partner",)
OPERATOR_OR_PARTNERS = ("platform", "partner")


def is_public(handler: BaseRouteHandler) -> bool:
    return bool(handler.opt.get("public"))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


async def _check_csrf(connection: ASGIConnection[Any, Any, Any, Any], principal: Principal) -> None:
    """Browser sessions must prove each unsafe request came from our own page (synchroniser token)."""
    if principal.session_id is None or connection.scope.get("method") in SAFE_METHODS:
        return
    sent = connection.headers.get(CSRF_HEADER)
    if sent is None and isinstance(connection, Request):
        content_type = connection.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await connection.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not sent or not principal.csrf_token or not hmac.compare_digest(sent, principal.csrf_token):
        raise PermissionDeniedError("missing or wrong CSRF token: reload the page and try again")


async def require_permission(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if is_public(handler) or connection.scope.get("method") == "OPTIONS":
        # OPTIONS answers only which methods exist (CORS preflight); it reads no data.
        return
    permission = handler.opt.get("permission")
    signed_in_only = bool(handler.opt.get("authenticated"))
    if not permission and not signed_in_only:
        raise PermissionDeniedError("this route has no access rule and is closed")
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        failure = connection.scope.get("auth")
        if isinstance(failure, AuthFailure):
            raise AuthenticationError(failure.reason)
        raise AuthenticationError("authentication required: send 'Authorization: Bearer <API key>'")
    await _check_csrf(connection, principal)
    if permission and not principal.can(permission):
        raise PermissionDeniedError(f"your role does not grant '{permission}'")
    kinds = handler.opt.get("org_kinds")
    if kinds and principal.org_kind.value not in kinds:
        raise PermissionDeniedError(f"this is for {' and '.join(kinds)} staff")
