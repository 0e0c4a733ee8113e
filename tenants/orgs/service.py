"""Rules for partners and customers, and the one door into a tenant's scope."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.api.schemas import apply_update, check_timezone
from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.db.scope import apply_principal_scope, bind_tenant
from andon.platform.db.types import utcnow
from andon.platform.http.errors import ConflictError, NotFoundError, PermissionDeniedError
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind
from andon.tenants.orgs.models import Customer, Partner
from andon.tenants.orgs.repository import CustomerRepository, OrgStatusRepository, PartnerRepository
from andon.tenants.orgs.schemas import CustomerCreate, CustomerUpdate, PartnerCreate, PartnerUpdate


class PartnerService:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal
        self.repo = PartnerRepository(session, principal)

    async def get(self, partner_id: uuid.UUID) -> Partner:
        partner = await self.repo.get(partner_id)
        if partner is None:
            raise NotFoundError(f"partner {partner_id} not found")
        return partner

    async def list(
        self, *, limit: int, offset: int, q: str | None, status: str | None = None
    ) -> tuple[Sequence[Partner], int]:
        return await self.repo.list(limit=limit, offset=offset, q=q, status=status)

    async def customer_counts(self, partner_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        counts = await self.repo.customer_counts(partner_ids)
        return {partner_id: counts.get(partner_id, 0) for partner_id in partner_ids}

    async def count(self) -> tuple[int, int]:
        """Partners and customers within reach; only numbers, so the operator may see them platform-wide."""
        return await self.repo.count()

    async def create(self, data: PartnerCreate) -> Partner:
        if await self.repo.slug_taken(data.slug):
            raise ConflictError(
                f"a partner with slug '{data.slug}' already exists",
                extra={"errors": [{"field": "slug", "message": "already in use"}]},
            )
        partner = await self.repo.add(Partner(slug=data.slug, name=data.name, status="active"))
        await record(
            self.session,
            self.principal,
            "partner.created",
            target_type="partner",
            target_id=partner.id,
            after=snapshot(partner),
        )
        return partner

    async def update(self, partner_id: uuid.UUID, data: PartnerUpdate) -> Partner:
        partner = await self.get(partner_id)
        before = snapshot(partner)
        apply_update(partner, data)
        await self.session.flush()
        await record(
            self.session,
            self.principal,
            "partner.updated",
            target_type="partner",
            target_id=partner.id,
            before=before,
            after=snapshot(partner),
        )
        return partner

    async def delete(self, partner_id: uuid.UUID) -> None:
        partner = await self.get(partner_id)
        customers = await self.repo.count_customers(partner.id)
        if customers:
            raise ConflictError(
                f"partner '{partner.slug}' still has {customers} customer(s); move or delete them first"
            )
        before = snapshot(partner)
        await self.repo.delete(partner)
        await record(
            self.session, self.principal, "partner.deleted", target_type="partner", target_id=partner_id, before=before
        )


class CustomerService:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal
        self.repo = CustomerRepository(session, principal)

    async def get(self, customer_id: uuid.UUID) -> Customer:
        customer = await self.repo.get(customer_id)
        if customer is None:
            raise NotFoundError(f"customer {customer_id} not found")
        return customer

    async def open_tenant(self, customer_id: uuid.UUID) -> TenantContext:
        """The only way to obtain a ``TenantContext``: the customer must be within the caller's reach.

        Binds the transaction's row-level-security scope to that tenant as a second wall.
        """
        customer = await self.get(customer_id)
        if self.principal.org_kind is OrgKind.PLATFORM and self.principal.subject_kind is not SubjectKind.SYSTEM:
            # The operator sees that customers exist, never what is inside them.
            raise PermissionDeniedError("the platform operator has no access inside a customer")
        if self.principal.org_kind is OrgKind.PARTNER and not customer.partner_may_act(utcnow()):
            raise PermissionDeniedError(
                f"{customer.name} has not granted its partner access, or the access has expired; "
                "its administrator can turn it on under the customer's settings"
            )
        tenant_id = TenantId(customer.id)
        await bind_tenant(self.session, tenant_id, self.principal)
        return TenantContext(tenant_id=tenant_id, partner_id=customer.partner_id, principal=self.principal)

    async def list(
        self, *, limit: int, offset: int, q: str | None, partner_id: uuid.UUID | None, status: str | None = None
    ) -> tuple[Sequence[Customer], int]:
        return await self.repo.list(limit=limit, offset=offset, q=q, partner_id=partner_id, status=status)

    async def _target_partner(self, requested: uuid.UUID | None) -> uuid.UUID:
        if self.principal.org_kind is OrgKind.PARTNER and self.principal.partner_id is not None:
            if requested not in (None, self.principal.partner_id):
                raise NotFoundError(f"partner {requested} not found")
            return self.principal.partner_id
        if self.principal.org_kind is OrgKind.PLATFORM:
            if requested is None:
                raise ConflictError("partner_id is required when the platform operator creates a customer")
            await PartnerService(self.session, self.principal).get(requested)
            return requested
        raise PermissionDeniedError("only a partner or the platform operator can create customers")

    async def create(self, data: CustomerCreate) -> Customer:
        partner_id = await self._target_partner(data.partner_id)
        check_timezone(data.default_timezone, "default_timezone")
        if await self.repo.slug_taken(data.slug):
            raise ConflictError(
                f"a customer with slug '{data.slug}' already exists",
                extra={"errors": [{"field": "slug", "message": "already in use"}]},
            )
        customer = await self.repo.add(
            Customer(
                partner_id=partner_id,
                slug=data.slug,
                name=data.name,
                default_timezone=data.default_timezone,
                status="active",
            )
        )
        await record(
            self.session,
            self.principal,
            "customer.created",
            target_type="customer",
            target_id=customer.id,
            after=snapshot(customer),
            partner_id=partner_id,
        )
        return customer

    async def update(self, customer_id: uuid.UUID, data: CustomerUpdate) -> Customer:
        customer = await self.get(customer_id)
        if self.principal.org_kind is OrgKind.CUSTOMER and data.status is not msgspec.UNSET:
            raise PermissionDeniedError("only the partner can suspend or reactivate a customer")
        if self.principal.org_kind is not OrgKind.CUSTOMER and not (
            data.partner_access is msgspec.UNSET and data.partner_access_until is msgspec.UNSET
        ):
            raise PermissionDeniedError("only the customer decides whether its partner may act inside it")
        if isinstance(data.default_timezone, str):
            check_timezone(data.default_timezone, "default_timezone")
        before = snapshot(customer)
        apply_update(customer, data)
        await self.session.flush()
        # A customer's own change lands on its own chain; its partner's on the partner's.
        own = await self.open_tenant(customer.id) if self.principal.org_kind is OrgKind.CUSTOMER else None
        await record(
            self.session,
            self.principal,
            "customer.updated",
            target_type="customer",
            target_id=customer.id,
            before=before,
            after=snapshot(customer),
            tenant=own,
            partner_id=customer.partner_id,
        )
        return customer

    async def delete(self, customer_id: uuid.UUID) -> None:
        customer = await self.get(customer_id)
        if self.principal.org_kind is OrgKind.CUSTOMER:
            raise PermissionDeniedError("a customer cannot delete its own account")
        before = snapshot(customer)
        partner_id = customer.partner_id
        await self.repo.delete(customer)
        await record(
            self.session,
            self.principal,
            "customer.deleted",
            target_type="customer",
            target_id=customer_id,
            before=before,
            partner_id=partner_id,
        )


async def org_is_active(session: AsyncSession, principal: Principal) -> bool:
    """Handed to the authentication middleware: a suspended customer or partner cannot sign in or
    use its keys (the partner can still reach a suspended customer to reactivate it)."""
    if principal.org_kind is OrgKind.PLATFORM:
        return True
    await apply_principal_scope(session, principal)
    return await OrgStatusRepository(session).active(partner_id=principal.partner_id, customer_id=principal.customer_id)
