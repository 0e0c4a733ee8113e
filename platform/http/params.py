"""Explicit handler parameters (Litestar's named dependencies and parameter markers), named once.

``db_session: DbSession`` is the request's unit of work, ``principal: Caller`` the authenticated
caller, ``tenant: Tenant`` a checked tenant scope (routes under ``/customers/{customer_id}``).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal

DbSession = NamedDependency[AsyncSession]
Caller = NamedDependency[Principal]
Tenant = NamedDependency[TenantContext]

PathId = Annotated[uuid.UUID, PathParameter()]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="page size (1-500)")]
Offset = Annotated[int, QueryParameter(ge=0, le=10_000_000, description="rows to skip")]
Search = Annotated[str | None, QueryParameter(max_length=200, description="name contains")]
OptionalId = Annotated[uuid.UUID | None, QueryParameter(description="filter by this id")]
Flag = Annotated[bool, QueryParameter()]
