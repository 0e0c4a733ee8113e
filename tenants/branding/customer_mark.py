"""Per-customer sub-branding: a customer's own logo inside its partner's shell, so people at the
plant see their company beside the partner's product."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.audit.service import record
from andon.platform.db.repository import TenantRepository
from andon.platform.db.scope import apply_principal_scope
from andon.platform.http.errors import AndonError
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.branding.images import sanitise_logo
from andon.tenants.branding.models import CustomerBrand
from andon.tenants.orgs.service import CustomerService


class CustomerBrandRepository(TenantRepository[CustomerBrand]):
    model = CustomerBrand


@dataclass(frozen=True, slots=True)
class CustomerMark:
    name: str
    logo_url: str


def mark_url(customer_id: uuid.UUID, version: int) -> str:
    return f"/brand/customers/{customer_id}/logo.png?v={version}"


class CustomerMarkService:
    def __init__(self, session: AsyncSession, tenant: TenantContext) -> None:
        self.session = session
        self.tenant = tenant
        self.repo = CustomerBrandRepository(session, tenant)

    async def logo(self) -> bytes | None:
        row = await self.repo.find()
        return row.logo_png if row else None

    async def set_logo(self, data: bytes) -> str:
        clean = sanitise_logo(data)
        row = await self.repo.find()
        if row is None:
            row = await self.repo.add(CustomerBrand(tenant_id=self.tenant.tenant_id, logo_png=clean))
        else:
            row.logo_png = clean
            row.logo_version += 1
        await self.session.flush()
        await record(
            self.session,
            self.tenant.principal,
            "branding.customer_logo_changed",
            target_type="customer_brand",
            target_id=self.tenant.tenant_id,
            after={"bytes": len(clean), "version": row.logo_version},
            tenant=self.tenant,
        )
        return mark_url(self.tenant.tenant_id, row.logo_version)

    async def remove(self) -> None:
        row = await self.repo.find()
        if row is not None:
            await self.repo.delete(row)
            await record(
                self.session,
                self.tenant.principal,
                "branding.customer_logo_removed",
                target_type="customer_brand",
                target_id=self.tenant.tenant_id,
                tenant=self.tenant,
            )


class CustomerMarks:
    """The mark a signed-in customer's pages wear, asked before every page; kept per process for
    ``ttl`` seconds per customer and forgotten at once when it changes here."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._marks: dict[uuid.UUID, tuple[float, CustomerMark | None]] = {}

    async def __call__(self, sessionmaker: async_sessionmaker[AsyncSession], principal: object) -> CustomerMark | None:
        if not isinstance(principal, Principal) or principal.org_kind is not OrgKind.CUSTOMER:
            return None
        customer_id = principal.customer_id
        if customer_id is None:
            return None
        cached = self._marks.get(customer_id)
        if cached and time.monotonic() - cached[0] <= self.ttl:
            return cached[1]
        async with sessionmaker() as session, session.begin():
            await apply_principal_scope(session, principal)
            customers = CustomerService(session, principal)
            try:
                customer = await customers.get(customer_id)
                row = await CustomerBrandRepository(session, await customers.open_tenant(customer_id)).find()
            except AndonError:
                return None  # the guard refuses this caller with the reason; the page needs no logo
            mark = CustomerMark(customer.name, mark_url(customer_id, row.logo_version)) if row else None
        self._marks[customer_id] = (time.monotonic(), mark)
        return mark

    def forget(self, customer_id: uuid.UUID | None = None) -> None:
        if customer_id is None:
            self._marks.clear()
        else:
            self._marks.pop(customer_id, None)
