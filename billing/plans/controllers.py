"""Price books and plans: ``/api/v1/partners/{id}/price-books`` (a partner's retail prices) and
``/api/v1/wholesale/price-books`` (the operator's prices to partners); subscriptions:
``/api/v1/customers/{id}/subscription`` and ``/api/v1/partners/{id}/wholesale-subscription``."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post, put
from litestar.params import JSONBody, Parameter

from andon.billing.plans.schemas import (
    PlanVersionRead,
    PriceBookCreate,
    PriceBookRead,
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionRead,
)
from andon.billing.plans.service import PriceBookService, SubscriptionService, WholesaleSubscriptionService
from andon.billing.pricing.prices import Plan
from andon.platform.auth.guards import ONLY_OPERATOR, ONLY_PARTNERS, OPERATOR_OR_PARTNERS
from andon.platform.auth.rbac import P
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY

PlanKeyParam = Annotated[str, Parameter(pattern=r"^[a-z][a-z0-9-]{0,62}$")]


class PartnerPriceBookController(Controller):
    path = "/api/v1/partners/{partner_id:uuid}/price-books"
    tags = ["Billing"]

    @get("/", opt={"permission": P.BILLING_READ, "org_kinds": ONLY_PARTNERS})
    async def list_books(self, db_session: DbSession, principal: Caller, partner_id: PathId) -> list[PriceBookRead]:
        """The partner's retail price books with the newest version of each plan."""
        return await PriceBookService(db_session, principal).list_books(partner_id)

    @post("/", opt={"permission": P.BILLING_WRITE, "org_kinds": ONLY_PARTNERS})
    async def create_book(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, data: JSONBody[PriceBookCreate]
    ) -> PriceBookRead:
        return await PriceBookService(db_session, principal).create(partner_id, data)

    @get("/{book_id:uuid}", opt={"permission": P.BILLING_READ, "org_kinds": ONLY_PARTNERS})
    async def get_book(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, book_id: PathId
    ) -> PriceBookRead:
        return await PriceBookService(db_session, principal).get(partner_id, book_id)

    @post("/{book_id:uuid}/plans", opt={"permission": P.BILLING_WRITE, "org_kinds": ONLY_PARTNERS})
    async def put_plan(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, book_id: PathId, data: JSONBody[Plan]
    ) -> PlanVersionRead:
        """Stores a plan; a changed plan becomes its next version (subscriptions keep theirs)."""
        return await PriceBookService(db_session, principal).put_plan(partner_id, book_id, data)

    @get("/{book_id:uuid}/plans/{key:str}", opt={"permission": P.BILLING_READ, "org_kinds": ONLY_PARTNERS})
    async def plan_versions(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, book_id: PathId, key: PlanKeyParam
    ) -> list[PlanVersionRead]:
        return await PriceBookService(db_session, principal).versions(partner_id, book_id, key)


class WholesalePriceBookController(Controller):
    path = "/api/v1/wholesale/price-books"
    tags = ["Billing"]

    @get("/", opt={"permission": P.BILLING_READ, "org_kinds": OPERATOR_OR_PARTNERS})
    async def list_books(self, db_session: DbSession, principal: Caller) -> list[PriceBookRead]:
        """The operator's wholesale price books (the operator, and partners: their cost)."""
        return await PriceBookService(db_session, principal).list_books(None)

    @post("/", opt={"permission": P.BILLING_WRITE, "org_kinds": ONLY_OPERATOR})
    async def create_book(
        self, db_session: DbSession, principal: Caller, data: JSONBody[PriceBookCreate]
    ) -> PriceBookRead:
        return await PriceBookService(db_session, principal).create(None, data)

    @get("/{book_id:uuid}", opt={"permission": P.BILLING_READ, "org_kinds": OPERATOR_OR_PARTNERS})
    async def get_book(self, db_session: DbSession, principal: Caller, book_id: PathId) -> PriceBookRead:
        return await PriceBookService(db_session, principal).get(None, book_id)

    @post("/{book_id:uuid}/plans", opt={"permission": P.BILLING_WRITE, "org_kinds": ONLY_OPERATOR})
    async def put_plan(
        self, db_session: DbSession, principal: Caller, book_id: PathId, data: JSONBody[Plan]
    ) -> PlanVersionRead:
        return await PriceBookService(db_session, principal).put_plan(None, book_id, data)

    @get("/{book_id:uuid}/plans/{key:str}", opt={"permission": P.BILLING_READ, "org_kinds": OPERATOR_OR_PARTNERS})
    async def plan_versions(
        self, db_session: DbSession, principal: Caller, book_id: PathId, key: PlanKeyParam
    ) -> list[PlanVersionRead]:
        return await PriceBookService(db_session, principal).versions(None, book_id, key)


class WholesaleSubscriptionController(Controller):
    path = "/api/v1/partners/{partner_id:uuid}/wholesale-subscription"
    tags = ["Billing"]

    @get("/", opt={"permission": P.BILLING_READ, "org_kinds": OPERATOR_OR_PARTNERS})
    async def get_subscription(self, db_session: DbSession, principal: Caller, partner_id: PathId) -> SubscriptionRead:
        return await WholesaleSubscriptionService(db_session, principal).read(partner_id)

    @put("/", opt={"permission": P.BILLING_WRITE, "org_kinds": ONLY_OPERATOR})
    async def change(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, data: JSONBody[SubscriptionChange]
    ) -> SubscriptionRead:
        """Starts the partner's wholesale plan or moves it to another (operator only)."""
        return await WholesaleSubscriptionService(db_session, principal).change(partner_id, data)

    @post("/cancel", status_code=200, opt={"permission": P.BILLING_WRITE, "org_kinds": ONLY_OPERATOR})
    async def cancel(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, data: JSONBody[SubscriptionCancel]
    ) -> SubscriptionRead:
        return await WholesaleSubscriptionService(db_session, principal).cancel(partner_id, data)


class SubscriptionController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/subscription"
    tags = ["Billing"]
    dependencies = TENANT_DEPENDENCY

    @get("/", opt={"permission": P.BILLING_READ})
    async def get_subscription(self, db_session: DbSession, tenant: Tenant) -> SubscriptionRead:
        """The plan in force and every earlier segment."""
        return await SubscriptionService(db_session, tenant).read()

    @put("/", opt={"permission": P.BILLING_WRITE})
    async def change(
        self, db_session: DbSession, tenant: Tenant, data: JSONBody[SubscriptionChange]
    ) -> SubscriptionRead:
        """Starts the subscription, or changes its plan at a moment (the period is prorated)."""
        return await SubscriptionService(db_session, tenant).change(data)

    @post("/cancel", status_code=200, opt={"permission": P.BILLING_WRITE})
    async def cancel(
        self, db_session: DbSession, tenant: Tenant, data: JSONBody[SubscriptionCancel]
    ) -> SubscriptionRead:
        return await SubscriptionService(db_session, tenant).cancel(data)


PLAN_CONTROLLERS = [
    PartnerPriceBookController,
    WholesalePriceBookController,
    WholesaleSubscriptionController,
    SubscriptionController,
]
