"""Invoices over the API.

``/api/v1/customers/{id}/invoices``: the customer's preview, invoices and credit notes (HTML, CSV of
lines) and ``/api/v1/customers/{id}/usage.csv`` (raw usage of a period);
``/api/v1/partners/{id}/invoices``: what the partner issued and received, period close, credit notes,
``/api/v1/partners/{id}/margin`` and ``/api/v1/partners/{id}/wholesale-preview``;
``/api/v1/wholesale``: the operator's period close and its documents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Literal

from litestar import Controller, MediaType, Response, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.invoices.document import lines_csv, render_html, usage_csv
from andon.billing.invoices.models import RETAIL
from andon.billing.invoices.repository import InvoiceRepository
from andon.billing.invoices.schemas import (
    CloseRequest,
    CloseResult,
    CreditNoteCreate,
    InvoiceRead,
    MarginReport,
    PreviewRead,
)
from andon.billing.invoices.service import (
    Document,
    InvoiceService,
    document_lines,
    invoice_read,
    preview_read,
    usage_rows,
)
from andon.billing.usage.meters import period_of
from andon.platform.auth.guards import ONLY_OPERATOR, ONLY_PARTNERS
from andon.platform.auth.rbac import P
from andon.platform.db.types import utcnow
from andon.platform.http.dependencies import unit_of_work
from andon.platform.http.params import Caller, DbSession, Limit, Offset, PathId, Tenant
from andon.platform.tenancy.principal import Principal
from andon.tenants.branding.service import ANDON, brand_of
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY

PeriodParam = Annotated[str | None, QueryParameter(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]
ChannelParam = Annotated[Literal["retail", "wholesale"] | None, QueryParameter()]


def _stream(
    state: State, principal: Principal, filename: str, chunks: Callable[[AsyncSession], AsyncIterator[str]]
) -> Stream:
    """A CSV written as it is read, in a transaction of its own with the caller's scope (the
    request's own transaction has ended by the time the body is sent)."""

    async def body() -> AsyncIterator[bytes]:
        async with unit_of_work(state.sessionmaker, principal) as session:
            async for chunk in chunks(session):
                yield chunk.encode()

    return Stream(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _lines_stream(state: State, principal: Principal, documents: InvoiceRepository, doc: Document) -> Stream:
    view, invoice = documents.view, doc.invoice

    def chunks(session: AsyncSession) -> AsyncIterator[str]:
        return lines_csv(invoice.number, invoice.currency, document_lines(InvoiceRepository(session, view), invoice.id))

    return _stream(state, principal, f"{invoice.number}-lines.csv", chunks)


async def _html(db_session: AsyncSession, doc: Document) -> Response[str]:
    # Retail documents wear the issuing partner's brand; wholesale ones the operator's.
    brand = ANDON
    if doc.invoice.channel == RETAIL:
        brand = await brand_of(db_session, doc.invoice.partner_id, doc.invoice.issuer_name)
    return Response(render_html(doc, brand), media_type=MediaType.HTML)


class CustomerInvoiceController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}"
    tags = ["Billing"]
    dependencies = TENANT_DEPENDENCY

    @get("/invoices/preview", opt={"permission": P.BILLING_READ})
    async def preview(self, db_session: DbSession, tenant: Tenant, period: PeriodParam = None) -> PreviewRead:
        """The invoice of a period (the current one by default) as it stands now."""
        draft = await InvoiceService(db_session, tenant.principal).preview(tenant, period or period_of(utcnow()))
        return preview_read(draft)

    @get("/invoices", opt={"permission": P.BILLING_READ})
    async def list_invoices(
        self, db_session: DbSession, tenant: Tenant, period: PeriodParam = None, limit: Limit = 100, offset: Offset = 0
    ) -> list[InvoiceRead]:
        documents = InvoiceService(db_session, tenant.principal).tenant_documents(tenant)
        return [invoice_read(r) for r in await documents.list(period=period, limit=limit, offset=offset)]

    @get("/invoices/{invoice_id:uuid}", opt={"permission": P.BILLING_READ})
    async def get_invoice(self, db_session: DbSession, tenant: Tenant, invoice_id: PathId) -> InvoiceRead:
        service = InvoiceService(db_session, tenant.principal)
        doc = await service.document(service.tenant_documents(tenant), invoice_id)
        return invoice_read(doc.invoice, doc.lines)

    @get("/invoices/{invoice_id:uuid}/html", opt={"permission": P.BILLING_READ})
    async def invoice_html(self, db_session: DbSession, tenant: Tenant, invoice_id: PathId) -> Response[str]:
        """The document, printable, in the issuer's brand."""
        service = InvoiceService(db_session, tenant.principal)
        return await _html(db_session, await service.document(service.tenant_documents(tenant), invoice_id))

    @get("/invoices/{invoice_id:uuid}/lines.csv", opt={"permission": P.BILLING_READ})
    async def invoice_lines_csv(
        self, db_session: DbSession, tenant: Tenant, state: State, invoice_id: PathId
    ) -> Stream:
        service = InvoiceService(db_session, tenant.principal)
        documents = service.tenant_documents(tenant)
        return _lines_stream(state, tenant.principal, documents, await service.document(documents, invoice_id))

    @get("/usage.csv", opt={"permission": P.BILLING_READ})
    async def usage_export(self, tenant: Tenant, state: State, period: PeriodParam = None) -> Stream:
        """Every usage record of a period (the current one by default), as recorded."""
        chosen = period or period_of(utcnow())
        return _stream(
            state,
            tenant.principal,
            f"usage-{chosen}.csv",
            lambda session: usage_csv(usage_rows(session, tenant, chosen)),
        )


class PartnerInvoiceController(Controller):
    path = "/api/v1/partners/{partner_id:uuid}"
    tags = ["Billing"]

    @get("/invoices", opt={"permission": P.BILLING_READ})
    async def list_invoices(
        self,
        db_session: DbSession,
        principal: Caller,
        partner_id: PathId,
        period: PeriodParam = None,
        channel: ChannelParam = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[InvoiceRead]:
        """Retail documents the partner issued and wholesale ones it received (the operator: only
        those it issued to this partner)."""
        documents = await InvoiceService(db_session, principal).partner_documents(partner_id)
        rows = await documents.list(period=period, channel=channel, limit=limit, offset=offset)
        return [invoice_read(r) for r in rows]

    @post("/invoices/close", status_code=200, opt={"permission": P.BILLING_WRITE})
    async def close(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, data: JSONBody[CloseRequest]
    ) -> CloseResult:
        """Issues the period's retail invoices; closing again creates nothing new."""
        created = await InvoiceService(db_session, principal).close(partner_id, data.period)
        return CloseResult(period=data.period, created=[invoice_read(d.invoice, d.lines) for d in created])

    @get("/invoices/{invoice_id:uuid}", opt={"permission": P.BILLING_READ})
    async def get_invoice(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, invoice_id: PathId
    ) -> InvoiceRead:
        service = InvoiceService(db_session, principal)
        doc = await service.document(await service.partner_documents(partner_id), invoice_id)
        return invoice_read(doc.invoice, doc.lines)

    @get("/invoices/{invoice_id:uuid}/html", opt={"permission": P.BILLING_READ})
    async def invoice_html(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, invoice_id: PathId
    ) -> Response[str]:
        service = InvoiceService(db_session, principal)
        doc = await service.document(await service.partner_documents(partner_id), invoice_id)
        return await _html(db_session, doc)

    @get("/invoices/{invoice_id:uuid}/lines.csv", opt={"permission": P.BILLING_READ})
    async def invoice_lines_csv(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId, invoice_id: PathId
    ) -> Stream:
        service = InvoiceService(db_session, principal)
        documents = await service.partner_documents(partner_id)
        return _lines_stream(state, principal, documents, await service.document(documents, invoice_id))

    @post("/invoices/{invoice_id:uuid}/credit-notes", opt={"permission": P.BILLING_WRITE})
    async def credit(
        self,
        db_session: DbSession,
        principal: Caller,
        partner_id: PathId,
        invoice_id: PathId,
        data: JSONBody[CreditNoteCreate],
    ) -> InvoiceRead:
        """A credit note against one of the partner's retail invoices (a new document)."""
        doc = await InvoiceService(db_session, principal).credit(partner_id, invoice_id, data)
        return invoice_read(doc.invoice, doc.lines)

    @get("/margin", opt={"permission": P.BILLING_READ, "org_kinds": ONLY_PARTNERS})
    async def margin(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, period: PeriodParam = None
    ) -> MarginReport:
        """Per customer: retail revenue, wholesale cost and the margin between them."""
        return await InvoiceService(db_session, principal).margin(partner_id, period or period_of(utcnow()))

    @get("/wholesale-preview", opt={"permission": P.BILLING_READ})
    async def wholesale_preview(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, period: PeriodParam = None
    ) -> PreviewRead:
        """What the operator will bill the partner for a period, per customer, as it stands now."""
        draft = await InvoiceService(db_session, principal).wholesale_preview(partner_id, period or period_of(utcnow()))
        return preview_read(draft)


class WholesaleInvoiceController(Controller):
    path = "/api/v1/wholesale"
    tags = ["Billing"]

    @post("/close", status_code=200, opt={"permission": P.BILLING_WRITE, "org_kinds": ONLY_OPERATOR})
    async def close(self, db_session: DbSession, principal: Caller, data: JSONBody[CloseRequest]) -> CloseResult:
        """Issues the period's wholesale invoices to partners; closing again creates nothing new."""
        created = await InvoiceService(db_session, principal).close_wholesale(data.period)
        return CloseResult(period=data.period, created=[invoice_read(d.invoice, d.lines) for d in created])

    @get("/invoices", opt={"permission": P.BILLING_READ, "org_kinds": ONLY_OPERATOR})
    async def list_invoices(
        self,
        db_session: DbSession,
        principal: Caller,
        period: PeriodParam = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[InvoiceRead]:
        documents = InvoiceService(db_session, principal).operator_documents()
        return [invoice_read(r) for r in await documents.list(period=period, limit=limit, offset=offset)]

    @get("/invoices/{invoice_id:uuid}", opt={"permission": P.BILLING_READ, "org_kinds": ONLY_OPERATOR})
    async def get_invoice(self, db_session: DbSession, principal: Caller, invoice_id: PathId) -> InvoiceRead:
        service = InvoiceService(db_session, principal)
        doc = await service.document(service.operator_documents(), invoice_id)
        return invoice_read(doc.invoice, doc.lines)

    @get("/invoices/{invoice_id:uuid}/html", opt={"permission": P.BILLING_READ, "org_kinds": ONLY_OPERATOR})
    async def invoice_html(self, db_session: DbSession, principal: Caller, invoice_id: PathId) -> Response[str]:
        service = InvoiceService(db_session, principal)
        return await _html(db_session, await service.document(service.operator_documents(), invoice_id))

    @get("/invoices/{invoice_id:uuid}/lines.csv", opt={"permission": P.BILLING_READ, "org_kinds": ONLY_OPERATOR})
    async def invoice_lines_csv(
        self, db_session: DbSession, principal: Caller, state: State, invoice_id: PathId
    ) -> Stream:
        service = InvoiceService(db_session, principal)
        documents = service.operator_documents()
        return _lines_stream(state, principal, documents, await service.document(documents, invoice_id))

    @post("/invoices/{invoice_id:uuid}/credit-notes", opt={"permission": P.BILLING_WRITE, "org_kinds": ONLY_OPERATOR})
    async def credit(
        self, db_session: DbSession, principal: Caller, invoice_id: PathId, data: JSONBody[CreditNoteCreate]
    ) -> InvoiceRead:
        doc = await InvoiceService(db_session, principal).credit(None, invoice_id, data)
        return invoice_read(doc.invoice, doc.lines)


INVOICE_CONTROLLERS = [CustomerInvoiceController, PartnerInvoiceController, WholesaleInvoiceController]
