"""REST routes for partners and customers."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.params import JSONBody

from andon.platform.api.schemas import Page, to_read
from andon.platform.auth.rbac import P
from andon.platform.http.params import Caller, DbSession, Limit, Offset, OptionalId, PathId, Search
from andon.tenants.orgs.schemas import (
    CustomerCreate,
    CustomerRead,
    CustomerUpdate,
    PartnerCreate,
    PartnerRead,
    PartnerUpdate,
)
from andon.tenants.orgs.service import CustomerService, PartnerService


class PartnerController(Controller):
    path = "/api/v1/partners"
    tags = ["Partners"]

    @get("/", opt={"permission": P.PARTNERS_READ})
    async def list_partners(
        self, db_session: DbSession, principal: Caller, limit: Limit = 50, offset: Offset = 0, q: Search = None
    ) -> Page[PartnerRead]:
        rows, total = await PartnerService(db_session, principal).list(limit=limit, offset=offset, q=q)
        return Page(items=[to_read(r, PartnerRead) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.PARTNERS_WRITE})
    async def create_partner(
        self, db_session: DbSession, principal: Caller, data: JSONBody[PartnerCreate]
    ) -> PartnerRead:
        return to_read(await PartnerService(db_session, principal).create(data), PartnerRead)

    @get("/{partner_id:uuid}", opt={"permission": P.PARTNERS_READ})
    async def get_partner(self, db_session: DbSession, principal: Caller, partner_id: PathId) -> PartnerRead:
        return to_read(await PartnerService(db_session, principal).get(partner_id), PartnerRead)

    @patch("/{partner_id:uuid}", opt={"permission": P.PARTNERS_WRITE})
    async def update_partner(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, data: JSONBody[PartnerUpdate]
    ) -> PartnerRead:
        return to_read(await PartnerService(db_session, principal).update(partner_id, data), PartnerRead)

    @delete("/{partner_id:uuid}", opt={"permission": P.PARTNERS_WRITE})
    async def delete_partner(self, db_session: DbSession, principal: Caller, partner_id: PathId) -> None:
        await PartnerService(db_session, principal).delete(partner_id)


class CustomerController(Controller):
    path = "/api/v1/customers"
    tags = ["Customers"]

    @get("/", opt={"permission": P.CUSTOMERS_READ})
    async def list_customers(
        self,
        db_session: DbSession,
        principal: Caller,
        limit: Limit = 50,
        offset: Offset = 0,
        q: Search = None,
        partner_id: OptionalId = None,
    ) -> Page[CustomerRead]:
        rows, total = await CustomerService(db_session, principal).list(
            limit=limit, offset=offset, q=q, partner_id=partner_id
        )
        return Page(items=[to_read(r, CustomerRead) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.CUSTOMERS_WRITE})
    async def create_customer(
        self, db_session: DbSession, principal: Caller, data: JSONBody[CustomerCreate]
    ) -> CustomerRead:
        return to_read(await CustomerService(db_session, principal).create(data), CustomerRead)

    @get("/{customer_id:uuid}", opt={"permission": P.CUSTOMERS_READ})
    async def get_customer(self, db_session: DbSession, principal: Caller, customer_id: PathId) -> CustomerRead:
        return to_read(await CustomerService(db_session, principal).get(customer_id), CustomerRead)

    @patch("/{customer_id:uuid}", opt={"permission": P.CUSTOMERS_WRITE})
    async def update_customer(
        self, db_session: DbSession, principal: Caller, customer_id: PathId, data: JSONBody[CustomerUpdate]
    ) -> CustomerRead:
        service = CustomerService(db_session, principal)
        return to_read(await service.update(customer_id, data), CustomerRead)

    @delete("/{customer_id:uuid}", opt={"permission": P.CUSTOMERS_WRITE})
    async def delete_customer(self, db_session: DbSession, principal: Caller, customer_id: PathId) -> None:
        await CustomerService(db_session, principal).delete(customer_id)
