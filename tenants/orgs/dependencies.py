"""The ``tenant`` dependency: routes under ``/customers/{customer_id}`` get a checked TenantContext."""

from __future__ import annotations

import uuid

from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal
from andon.tenants.orgs.service import CustomerService


async def provide_tenant(db_session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> TenantContext:
    return await CustomerService(db_session, principal).open_tenant(customer_id)


TENANT_DEPENDENCY = {"tenant": Provide(provide_tenant)}
