"""The ``tenant`` dependency: routes under ``/customers/{customer_id}`` get a checked TenantContext."""

from __future__ import annotations

from litestar.di import Provide

from andon.platform.http.params import Caller, DbSession, PathId
from andon.platform.tenancy.context import TenantContext
from andon.tenants.orgs.service import CustomerService


async def provide_tenant(db_session: DbSession, principal: Caller, customer_id: PathId) -> TenantContext:
    try:
        return await CustomerService(db_session, principal).open_tenant(customer_id)
    except BaseException:
        # Litestar has not yet registered the session's cleanup when a dependency of it fails, so the
        # transaction is ended here rather than left to the garbage collector.
        await db_session.rollback()
        raise


TENANT_DEPENDENCY = {"tenant": Provide(provide_tenant)}
