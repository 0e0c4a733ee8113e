"""All SQL for partners and customers, scoped by the caller's reach in the org tree."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, false, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.http.errors import ConflictError
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.orgs.models import Customer, Partner


def _partner_reach(principal: Principal) -> ColumnElement[bool]:
    if principal.org_kind is OrgKind.PLATFORM:
        return true()
    if principal.partner_id is not None:
        return Partner.id == principal.partner_id
    return false()


def _customer_reach(principal: Principal) -> ColumnElement[bool]:
    if principal.org_kind is OrgKind.PLATFORM:
        return true()
    if principal.org_kind is OrgKind.PARTNER and principal.partner_id is not None:
        return Customer.partner_id == principal.partner_id
    if principal.customer_id is not None:
        return Customer.id == principal.customer_id
    return false()


class PartnerRepository:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    def _select(self) -> Select[Partner]:
        return select(Partner).where(_partner_reach(self.principal))

    async def get(self, id_: uuid.UUID) -> Partner | None:
        return (await self.session.execute(self._select().where(Partner.id == id_))).scalar_one_or_none()

    async def list(
        self, *, limit: int, offset: int, q: str | None = None, status: str | None = None
    ) -> tuple[Sequence[Partner], int]:
        where: list[ColumnElement[bool]] = [Partner.name.ilike(f"%{q}%")] if q else []
        if status:
            where.append(Partner.status == status)
        rows = await self.session.execute(
            self._select().where(*where).order_by(Partner.name).limit(limit).offset(offset)
        )
        total = await self.session.execute(
            select(func.count()).select_from(Partner).where(_partner_reach(self.principal), *where)
        )
        return rows.scalars().all(), int(total.scalar_one())

    async def slug_taken(self, slug: str) -> bool:
        # Slugs are global (they name hosts and credentials), so this one check looks across partners.
        stmt = select(Partner.id).where(Partner.slug == slug)  # andon: unscoped-ok (uniqueness probe)
        return (await self.session.execute(stmt)).first() is not None

    async def add(self, partner: Partner) -> Partner:
        """The unique index is the final judge of a slug raced by two writers; a savepoint keeps the
        transaction usable when it says no."""
        try:
            async with self.session.begin_nested():
                self.session.add(partner)
                await self.session.flush()
        except IntegrityError:
            raise ConflictError(
                f"a partner with slug '{partner.slug}' already exists",
                extra={"errors": [{"field": "slug", "message": "already in use"}]},
            ) from None
        return partner

    async def count_customers(self, partner_id: uuid.UUID) -> int:
        stmt = select(func.count()).select_from(Customer).where(Customer.partner_id == partner_id)
        return int((await self.session.execute(stmt)).scalar_one())

    async def customer_counts(self, partner_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Customers per partner for a page of partners, in one query (a partner with none is absent)."""
        if not partner_ids:
            return {}
        stmt = (
            select(Customer.partner_id, func.count())
            .where(_customer_reach(self.principal), Customer.partner_id.in_(list(partner_ids)))
            .group_by(Customer.partner_id)
        )
        return {partner_id: int(n) for partner_id, n in (await self.session.execute(stmt)).all()}

    async def count(self) -> tuple[int, int]:
        """How many partners and customers the caller reaches: for the operator, the whole platform."""
        partners = select(func.count()).select_from(Partner).where(_partner_reach(self.principal))
        customers = select(func.count()).select_from(Customer).where(_customer_reach(self.principal))
        return (
            int((await self.session.execute(partners)).scalar_one()),
            int((await self.session.execute(customers)).scalar_one()),
        )

    async def delete(self, partner: Partner) -> None:
        await self.session.delete(partner)
        await self.session.flush()


class CustomerRepository:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    def _select(self) -> Select[Customer]:
        return select(Customer).where(_customer_reach(self.principal))

    async def get(self, id_: uuid.UUID) -> Customer | None:
        stmt = self._select().where(Customer.id == id_)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(
        self,
        *,
        limit: int,
        offset: int,
        q: str | None = None,
        partner_id: uuid.UUID | None = None,
        status: str | None = None,
    ) -> tuple[Sequence[Customer], int]:
        where: list[ColumnElement[bool]] = []
        if q:
            where.append(Customer.name.ilike(f"%{q}%"))
        if status:
            where.append(Customer.status == status)
        if partner_id:
            where.append(Customer.partner_id == partner_id)
        rows = await self.session.execute(
            self._select().where(*where).order_by(Customer.name).limit(limit).offset(offset)
        )
        total = await self.session.execute(
            select(func.count()).select_from(Customer).where(_customer_reach(self.principal), *where)
        )
        return rows.scalars().all(), int(total.scalar_one())

    async def slug_taken(self, slug: str) -> bool:
        stmt = select(Customer.id).where(Customer.slug == slug)  # andon: unscoped-ok (uniqueness probe)
        return (await self.session.execute(stmt)).first() is not None

    async def add(self, customer: Customer) -> Customer:
        """Row-level security hides other partners' customers from ``slug_taken``, so the unique index
        is the final judge; a savepoint keeps the transaction usable when it says no."""
        try:
            async with self.session.begin_nested():
                self.session.add(customer)
                await self.session.flush()
        except IntegrityError:
            raise ConflictError(
                f"a customer with slug '{customer.slug}' already exists",
                extra={"errors": [{"field": "slug", "message": "already in use"}]},
            ) from None
        return customer

    async def delete(self, customer: Customer) -> None:
        await self.session.delete(customer)
        await self.session.flush()


class OrgStatusRepository:
    """Whether the organisations a caller belongs to are active (suspension locks everyone out)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active(self, *, partner_id: uuid.UUID | None, customer_id: uuid.UUID | None) -> bool:
        if customer_id is not None:
            stmt = (
                select(Customer.status, Partner.status)
                .join(Partner, Partner.id == Customer.partner_id)
                .where(Customer.id == customer_id)
            )
        elif partner_id is not None:
            stmt = select(Partner.status, Partner.status).where(Partner.id == partner_id)
        else:
            return True
        row = (await self.session.execute(stmt)).first()
        return row is not None and tuple(row) == ("active", "active")
