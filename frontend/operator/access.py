"""Who may open the operator console: the platform operator's people and keys, nobody else."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from andon.platform.http.errors import PermissionDeniedError
from andon.platform.tenancy.principal import OrgKind, Principal


def operator_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Partner and customer roles share permission names with the operator's (``partners:read``), so
    the org kind is checked too, before any form is read."""
    principal = connection.scope.get("user")
    if isinstance(principal, Principal) and principal.org_kind is not OrgKind.PLATFORM:
        raise PermissionDeniedError("the operator console is for the platform operator")
