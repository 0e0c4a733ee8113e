"""Deny by default: a route runs only if it declares a permission the caller holds, or is public.

Routes declare ``opt={"permission": "resource:action"}`` or ``opt={"public": True}``; a route with
neither is refused to everyone (and fails the route-enumeration test).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from andon.platform.auth.middleware import AuthFailure
from andon.platform.http.errors import AuthenticationError, PermissionDeniedError
from andon.platform.tenancy.principal import Principal


def is_public(handler: BaseRouteHandler) -> bool:
    return bool(handler.opt.get("public"))


def require_permission(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if is_public(handler) or connection.scope.get("method") == "OPTIONS":
        # OPTIONS answers only which methods exist (CORS preflight); it reads no data.
        return
    permission = handler.opt.get("permission")
    if not permission:
        raise PermissionDeniedError("this route has no access rule and is closed")
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        failure = connection.scope.get("auth")
        if isinstance(failure, AuthFailure):
            raise AuthenticationError(failure.reason)
        raise AuthenticationError("authentication required: send 'Authorization: Bearer <API key>'")
    if not principal.can(permission):
        raise PermissionDeniedError(f"your role does not grant '{permission}'")
