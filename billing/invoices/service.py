"""Invoices: a live preview of the current period, period close into immutable documents numbered
without gaps per issuer, credit notes as new documents, and the partner's margin per customer.

Two channels: retail (the partner bills each customer on its retail plan) and wholesale (the operator
bills each partner on its wholesale plan, rated customer by customer). The amounts of one document are
rated exactly and rounded once (``money.allocate``), so its lines always add up to its total.

Rules of a period with several plan segments (a start, a plan change or a cancellation inside it):
each segment's fees and minimum follow the share of the period it covered (``period_share``), and the
period's usage is rated on the segment in force last — usage is never prorated. A trial waives the
fees of the days it covers, and the period's usage when it lasts to the end of the period. Wholesale
fees of a customer follow the share of the period the customer itself was subscribed.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fractions import Fraction

from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.invoices.models import (
    CREDIT_NOTE,
    INVOICE,
    OPERATOR_ISSUER,
    RETAIL,
    WHOLESALE,
    Invoice,
    InvoiceLine,
)
from andon.billing.invoices.repository import InvoiceRepository, SequenceRepository, UsageExportRepository
from andon.billing.invoices.schemas import (
    CreditNoteCreate,
    InvoiceRead,
    LineRead,
    MarginReport,
    MarginRow,
    PreviewRead,
)
from andon.billing.plans.service import Segment, SubscriptionService, WholesaleSubscriptionService
from andon.billing.pricing.money import allocate
from andon.billing.pricing.rating import MINIMUM, exact_lines, period_share
from andon.billing.usage.meters import GRACE, period_end
from andon.billing.usage.models import UsageRecord
from andon.billing.usage.service import MeterTotal, UsageService, partner_totals
from andon.platform.audit.service import record
from andon.platform.db.scope import lock_name
from andon.platform.db.types import utcnow
from andon.platform.http.errors import ConflictError, NotFoundError, PermissionDeniedError, field_error
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.orgs.models import Customer, Partner
from andon.tenants.orgs.service import CustomerService, PartnerService

OPERATOR_PREFIX = "ANDON"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    try:
        year, month = (int(part) for part in period.split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
    except ValueError:
        raise field_error("period", "a period is a month, YYYY-MM") from None
    return start, period_end(period)


@dataclass(frozen=True, slots=True)
class DraftLine:
    meter: str
    description: str
    quantity: int
    unit_price: str | None
    exact: Fraction
    tier: str | None = None
    customer_id: uuid.UUID | None = None
    customer_name: str | None = None
    plan_key: str | None = None
    plan_version: int | None = None
    amount: int = 0


@dataclass(frozen=True, slots=True)
class Draft:
    channel: str
    period: str
    currency: str | None
    lines: list[DraftLine]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


def _tier(title: str) -> str | None:
    """The tier a rating line names ("Events (1,001 to 10,000)" → "1,001 to 10,000")."""
    title = title.removesuffix(", tier fee")
    if not title.endswith(")") or "(" not in title:
        return None
    return title[title.rindex("(") + 1 : -1].removeprefix("volume ")


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> int:
    return max(0, int((min(a[1], b[1]) - max(a[0], b[0])).total_seconds()))


def segment_lines(
    segments: Sequence[Segment],
    usage: dict[str, int],
    start: datetime,
    end: datetime,
    *,
    within: list[tuple[datetime, datetime]] | None = None,
    customer: Customer | None = None,
) -> list[DraftLine]:
    """The exact lines of a period under these segments (oldest first). ``within``: the stretches
    that count for fees (a customer's own subscription, for wholesale); the whole period when None."""
    if not segments:
        return []
    period_seconds = int((end - start).total_seconds())
    last = segments[-1]
    lines: list[DraftLine] = []
    for segment in segments:
        paid_from = max(start, segment.starts_at, segment.trial_ends_at or segment.starts_at)
        paid_to = min(end, segment.ends_at or end)
        stretches = within if within is not None else [(start, end)]
        paid = sum(_overlap((paid_from, paid_to), s) for s in stretches) if paid_to > paid_from else 0
        use = usage if segment is last else {}
        if segment is last and segment.trial_ends_at is not None and segment.trial_ends_at >= paid_to:
            use = {}
        label = ""
        if len(segments) > 1:
            shown_to = min(end, segment.ends_at or end)
            label = f"{segment.plan.name}, {max(start, segment.starts_at):%d %b %H:%M} to {shown_to:%d %b %H:%M}: "
        for line in exact_lines(segment.plan, use, period_share(paid, period_seconds)):
            if line.exact == 0 and line.unit_price is None:
                continue  # a fee of a stretch that was not paid for (a trial, outside the subscription)
            lines.append(
                DraftLine(
                    meter=line.meter or "fee",
                    description=f"{label}{line.title}",
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    exact=line.exact,
                    tier=None if line.meter == MINIMUM else _tier(line.title),
                    customer_id=customer.id if customer else None,
                    customer_name=customer.name if customer else None,
                    plan_key=segment.version.key,
                    plan_version=segment.version.version,
                )
            )
    return lines


def quantities(totals: Sequence[MeterTotal]) -> dict[str, int]:
    return {t.meter: t.quantity for t in totals}


def rounded(channel: str, period: str, currency: str | None, lines: list[DraftLine]) -> Draft:
    amounts = allocate([line.exact for line in lines])
    return Draft(channel, period, currency, [replace(line, amount=a) for line, a in zip(lines, amounts, strict=True)])


def _line_read(position: int, line: DraftLine | InvoiceLine) -> LineRead:
    # A stored line knows its position and amount; a draft line is numbered as it is listed.
    return LineRead(
        position=line.position if isinstance(line, InvoiceLine) else position,
        customer_id=line.customer_id,
        customer_name=line.customer_name,
        plan=line.plan_key,
        plan_version=line.plan_version,
        meter=line.meter,
        tier=line.tier,
        description=line.description,
        quantity=line.quantity,
        unit_price=line.unit_price,
        amount_minor=line.amount_minor if isinstance(line, InvoiceLine) else line.amount,
    )


def preview_read(draft: Draft) -> PreviewRead:
    return PreviewRead(
        channel=draft.channel,
        period=draft.period,
        currency=draft.currency,
        lines=[_line_read(n, line) for n, line in enumerate(draft.lines, 1)],
        total_minor=draft.total,
    )


def invoice_read(row: Invoice, lines: Sequence[InvoiceLine] | None = None) -> InvoiceRead:
    return InvoiceRead(
        id=row.id,
        kind=row.kind,
        channel=row.channel,
        number=row.number,
        issuer=OPERATOR_ISSUER if row.issuer_key == OPERATOR_ISSUER else "partner",
        issuer_name=row.issuer_name,
        partner_id=row.partner_id,
        customer_id=row.tenant_id,
        recipient_name=row.recipient_name,
        period=row.period,
        currency=row.currency,
        total_minor=row.total_minor,
        issued_at=row.issued_at,
        credited_invoice_id=row.credited_invoice_id,
        reason=row.reason,
        lines=[_line_read(line.position, line) for line in lines] if lines is not None else None,
    )


def billing_tenant(customer: Customer, principal: Principal) -> TenantContext:
    """A customer's scope for its partner's or the operator's own billing reads.

    Revenue and cost are the partner's (and the operator's) own business, not work delegated inside
    the customer, so this does not ask for the customer's delegation; the customer was fetched within
    the caller's reach, and on PostgreSQL the policies of usage records and subscriptions open exactly
    these reads to its partner and to the operator outside any tenant."""
    return TenantContext(tenant_id=TenantId(customer.id), partner_id=customer.partner_id, principal=principal)


def number_prefix(partner: Partner | None) -> str:
    if partner is None:
        return OPERATOR_PREFIX
    return "".join(ch for ch in partner.slug.upper() if ch.isalnum())[:12] or "P"


def format_number(prefix: str, kind: str, year: int, sequence: int) -> str:
    middle = "-CN" if kind == CREDIT_NOTE else ""
    return f"{prefix}{middle}-{year}-{sequence:06d}"


def closable_from(period: str) -> datetime:
    """When a period may be closed: once its grace has passed (usage may arrive until then)."""
    _, end = period_bounds(period)
    return end + GRACE


def retail_key(customer_id: uuid.UUID, period: str) -> str:
    return f"retail:{customer_id}:{period}"


def wholesale_key(partner_id: uuid.UUID, period: str) -> str:
    return f"wholesale:{partner_id}:{period}"


@dataclass(frozen=True, slots=True)
class Document:
    """An issued document with what its printable form needs."""

    invoice: Invoice
    lines: Sequence[InvoiceLine]
    credited_number: str | None


class InvoiceService:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    # --- who may see and issue what ---

    async def _own_partner(self, partner_id: uuid.UUID) -> Partner:
        """The partner, when the caller is that partner's own people (retail issuer, margin)."""
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        if self.principal.org_kind is OrgKind.CUSTOMER:
            raise NotFoundError(f"partner {partner_id} not found")
        if not (self.principal.org_kind is OrgKind.PARTNER and self.principal.partner_id == partner.id):
            raise PermissionDeniedError("only the partner's own people see its revenue or issue its invoices")
        return partner

    async def partner_documents(self, partner_id: uuid.UUID) -> InvoiceRepository:
        """A partner sees what it issued and received; the operator only what it issued to it."""
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        if self.principal.org_kind is OrgKind.CUSTOMER:
            raise NotFoundError(f"partner {partner_id} not found")
        if self.principal.is_operator:
            return InvoiceRepository.for_operator(self.session, partner.id)
        return InvoiceRepository.for_partner(self.session, partner.id)

    def operator_documents(self) -> InvoiceRepository:
        if not self.principal.is_operator:
            raise PermissionDeniedError("wholesale documents of every partner are the operator's")
        return InvoiceRepository.for_operator(self.session)

    def tenant_documents(self, tenant: TenantContext) -> InvoiceRepository:
        return InvoiceRepository.for_tenant(self.session, tenant)

    async def _customers(self, partner_id: uuid.UUID) -> list[Customer]:
        customers = CustomerService(self.session, self.principal)
        found: list[Customer] = []
        while True:
            page, total = await customers.list(limit=500, offset=len(found), q=None, partner_id=partner_id)
            found.extend(page)
            if not page or len(found) >= total:
                break
        return sorted(found, key=lambda c: (c.slug, c.id))

    # --- previews ---

    async def preview(self, tenant: TenantContext, period: str, *, usage: dict[str, int] | None = None) -> Draft:
        """The customer's retail invoice for ``period`` as it stands now (usage summed in SQL; ``usage``:
        the customer's quantities when the caller read every customer's at once)."""
        start, end = period_bounds(period)
        segments = await SubscriptionService(self.session, tenant).segments(start, end)
        if not segments:
            return Draft(RETAIL, period, None, [])
        if usage is None:
            usage = quantities(await UsageService(self.session, tenant).totals(period))
        return rounded(RETAIL, period, segments[-1].plan.currency, segment_lines(segments, usage, start, end))

    async def wholesale_preview(self, partner_id: uuid.UUID, period: str) -> Draft:
        """The operator's wholesale invoice to the partner for ``period``: its wholesale plan rated on
        each customer's usage, with lines per customer."""
        start, end = period_bounds(period)
        segments = await WholesaleSubscriptionService(self.session, self.principal).segments(partner_id, start, end)
        if not segments:
            return Draft(WHOLESALE, period, None, [])
        lines: list[DraftLine] = []
        # Every customer's usage in one grouped read, not a round of queries per customer.
        totals = await partner_totals(self.session, partner_id, period)
        for customer in await self._customers(partner_id):
            tenant = billing_tenant(customer, self.principal)
            covered = await SubscriptionService(self.session, tenant).coverage(start, end)
            usage = quantities(totals.get(customer.id, []))
            if not covered and not any(usage.values()):
                continue
            lines.extend(segment_lines(segments, usage, start, end, within=covered, customer=customer))
        return rounded(WHOLESALE, period, segments[-1].plan.currency, lines)

    # --- period close ---

    def _closable(self, period: str, now: datetime) -> None:
        opens = closable_from(period)
        if now < opens:
            raise ConflictError(
                f"{period} can be closed from {opens.isoformat()}: usage may arrive until its grace ends",
                extra={"errors": [{"field": "period", "message": "still open"}]},
            )

    async def close(self, partner_id: uuid.UUID, period: str, *, now: datetime | None = None) -> list[Document]:
        """Issues the partner's retail invoices for ``period``, one per customer with a plan in it.
        Running it again creates nothing new (one document per customer and period)."""
        now = now or utcnow()
        partner = await self._own_partner(partner_id)
        self._closable(period, now)
        issuer = str(partner.id)
        # One closer per issuer at a time: the second waits, then finds the documents the first made.
        await lock_name(self.session, f"invoices:{issuer}")
        documents = InvoiceRepository.for_partner(self.session, partner.id)
        customers = await self._customers(partner.id)
        done = await documents.existing_keys([retail_key(c.id, period) for c in customers])
        created: list[Document] = []
        # Every customer's usage in one grouped read, not a round of queries per customer.
        totals = await partner_totals(self.session, partner.id, period) if len(done) < len(customers) else {}
        for customer in customers:
            if retail_key(customer.id, period) in done:
                continue
            usage = quantities(totals.get(customer.id, []))
            draft = await self.preview(billing_tenant(customer, self.principal), period, usage=usage)
            if draft.currency is None:
                continue
            created.append(
                await self._issue(
                    draft,
                    documents,
                    issuer=issuer,
                    issuer_name=partner.name,
                    prefix=number_prefix(partner),
                    partner_id=partner.id,
                    customer=customer,
                    recipient_name=customer.name,
                    document_key=retail_key(customer.id, period),
                    now=now,
                )
            )
        return created

    async def close_wholesale(self, period: str, *, now: datetime | None = None) -> list[Document]:
        """Issues the operator's wholesale invoice to every partner with a wholesale plan in ``period``."""
        now = now or utcnow()
        documents = self.operator_documents()
        self._closable(period, now)
        await lock_name(self.session, f"invoices:{OPERATOR_ISSUER}")
        start, end = period_bounds(period)
        partners = await WholesaleSubscriptionService(self.session, self.principal).partners_between(start, end)
        done = await documents.existing_keys([wholesale_key(p, period) for p in partners])
        created: list[Document] = []
        for partner_id in partners:
            if wholesale_key(partner_id, period) in done:
                continue
            partner = await PartnerService(self.session, self.principal).get(partner_id)
            draft = await self.wholesale_preview(partner_id, period)
            if draft.currency is None:
                continue
            created.append(
                await self._issue(
                    draft,
                    documents,
                    issuer=OPERATOR_ISSUER,
                    issuer_name=OPERATOR_PREFIX.title(),
                    prefix=OPERATOR_PREFIX,
                    partner_id=partner.id,
                    customer=None,
                    recipient_name=partner.name,
                    document_key=wholesale_key(partner.id, period),
                    now=now,
                )
            )
        return created

    async def _issue(
        self,
        draft: Draft,
        documents: InvoiceRepository,
        *,
        issuer: str,
        issuer_name: str,
        prefix: str,
        partner_id: uuid.UUID,
        customer: Customer | None,
        recipient_name: str,
        document_key: str,
        now: datetime,
        kind: str = INVOICE,
        credited: Invoice | None = None,
        reason: str | None = None,
    ) -> Document:
        assert draft.currency is not None
        sequence = await SequenceRepository(self.session, issuer).next(kind, now.year)
        invoice = Invoice(
            kind=kind,
            channel=draft.channel,
            issuer_key=issuer,
            issuer_name=issuer_name,
            partner_id=partner_id,
            tenant_id=customer.id if customer else (credited.tenant_id if credited else None),
            recipient_name=recipient_name,
            number=format_number(prefix, kind, now.year, sequence),
            sequence=sequence,
            period=draft.period,
            currency=draft.currency,
            total_minor=draft.total,
            issued_at=now,
            document_key=document_key,
            credited_invoice_id=credited.id if credited else None,
            reason=reason,
        )
        lines = [
            InvoiceLine(
                position=n,
                customer_id=line.customer_id if line.customer_id else (customer.id if customer else None),
                customer_name=line.customer_name if line.customer_id else (customer.name if customer else None),
                plan_key=line.plan_key,
                plan_version=line.plan_version,
                meter=line.meter,
                tier=line.tier,
                description=line.description[:400],
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount_minor=line.amount,
            )
            for n, line in enumerate(draft.lines, 1)
        ]
        await documents.add(invoice, lines)
        await record(
            self.session,
            self.principal,
            "billing.credit_note_issued" if kind == CREDIT_NOTE else "billing.invoice_issued",
            target_type="invoice",
            target_id=invoice.id,
            after={
                "number": invoice.number,
                "period": invoice.period,
                "total_minor": invoice.total_minor,
                "currency": invoice.currency,
            },
            partner_id=None if issuer == OPERATOR_ISSUER else partner_id,
        )
        return Document(invoice, lines, credited.number if credited else None)

    # --- credit notes ---

    async def credit(
        self,
        partner_id: uuid.UUID | None,
        invoice_id: uuid.UUID,
        data: CreditNoteCreate,
        *,
        now: datetime | None = None,
    ) -> Document:
        """A credit note against an issued invoice, by its issuer: a new document with negative
        amounts and its own number; the invoice itself never changes."""
        now = now or utcnow()
        if partner_id is None:
            documents = self.operator_documents()
            issuer, prefix, issuer_name = OPERATOR_ISSUER, OPERATOR_PREFIX, OPERATOR_PREFIX.title()
        else:
            partner = await self._own_partner(partner_id)
            documents = InvoiceRepository.for_partner(self.session, partner.id)
            issuer, prefix, issuer_name = str(partner.id), number_prefix(partner), partner.name
        await lock_name(self.session, f"invoices:{issuer}")
        invoice = await documents.get(invoice_id)
        if invoice is None or invoice.kind != INVOICE:
            raise NotFoundError(f"invoice {invoice_id} not found")
        if invoice.issuer_key != issuer:
            raise PermissionDeniedError("only the issuer of an invoice credits it")
        earlier = await documents.credits_of(invoice.id)
        remaining = invoice.total_minor + sum(c.total_minor for c in earlier)
        if data.lines is None:
            if earlier:
                raise ConflictError("part of this invoice was credited already; credit the rest line by line")
            lines = [
                DraftLine(
                    meter=line.meter,
                    description=f"Credit: {line.description}",
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    exact=Fraction(-line.amount_minor),
                    tier=line.tier,
                    customer_id=line.customer_id,
                    customer_name=line.customer_name,
                    plan_key=line.plan_key,
                    plan_version=line.plan_version,
                    amount=-line.amount_minor,
                )
                for line in await documents.lines(invoice.id)
            ]
        else:
            asked = sum(line.amount_minor for line in data.lines)
            if asked > remaining:
                raise field_error("lines", f"credits {asked} but only {remaining} of the invoice is left to credit")
            lines = [
                DraftLine(
                    meter="credit",
                    description=line.description,
                    quantity=1,
                    unit_price=None,
                    exact=Fraction(-line.amount_minor),
                    amount=-line.amount_minor,
                )
                for line in data.lines
            ]
        draft = Draft(invoice.channel, invoice.period, invoice.currency, lines)
        return await self._issue(
            draft,
            documents,
            issuer=issuer,
            issuer_name=issuer_name,
            prefix=prefix,
            partner_id=invoice.partner_id,
            customer=None,
            recipient_name=invoice.recipient_name,
            document_key=f"credit:{invoice.id}:{len(earlier) + 1}",
            now=now,
            kind=CREDIT_NOTE,
            credited=invoice,
            reason=data.reason,
        )

    # --- reading documents ---

    async def document(self, documents: InvoiceRepository, invoice_id: uuid.UUID) -> Document:
        invoice = await documents.get(invoice_id)
        if invoice is None:
            raise NotFoundError(f"invoice {invoice_id} not found")
        credited = await documents.get(invoice.credited_invoice_id) if invoice.credited_invoice_id else None
        return Document(invoice, await documents.lines(invoice.id), credited.number if credited else None)

    # --- the partner's margin ---

    async def margin(self, partner_id: uuid.UUID, period: str) -> MarginReport:
        """Per customer: what the partner bills it (retail) and what the operator bills the partner
        for it (wholesale). Issued documents count once the period is closed, credit notes included;
        before that, the live previews."""
        partner = await self._own_partner(partner_id)
        documents = InvoiceRepository.for_partner(self.session, partner.id)
        issued = await documents.of_period(period)
        retail: dict[uuid.UUID, tuple[str, int]] = {}
        wholesale: dict[uuid.UUID, tuple[str, int]] = {}
        wholesale_docs = [d for d in issued if d.channel == WHOLESALE]
        for doc in issued:
            if doc.channel == RETAIL and doc.tenant_id is not None:
                currency, total = retail.get(doc.tenant_id, (doc.currency, 0))
                retail[doc.tenant_id] = (currency, total + doc.total_minor)
        for line in await documents.lines_of([d.id for d in wholesale_docs]):
            if line.customer_id is not None:
                currency = next(d.currency for d in wholesale_docs if d.id == line.invoice_id)
                _, total = wholesale.get(line.customer_id, (currency, 0))
                wholesale[line.customer_id] = (currency, total + line.amount_minor)
        live_wholesale: dict[uuid.UUID, int] = defaultdict(int)
        live_currency: str | None = None
        if not wholesale_docs:
            draft = await self.wholesale_preview(partner.id, period)
            live_currency = draft.currency
            for wline in draft.lines:
                if wline.customer_id is not None:
                    live_wholesale[wline.customer_id] += wline.amount
        rows: list[MarginRow] = []
        for customer in await self._customers(partner.id):
            if customer.id in retail:
                retail_currency: str | None = retail[customer.id][0]
                retail_minor, retail_source = retail[customer.id][1], "invoiced"
            else:
                draft = await self.preview(billing_tenant(customer, self.principal), period)
                retail_currency, retail_minor, retail_source = draft.currency, draft.total, "preview"
            wholesale_currency: str | None
            if wholesale_docs:
                wholesale_currency = wholesale.get(customer.id, (wholesale_docs[0].currency, 0))[0]
                wholesale_minor, wholesale_source = wholesale.get(customer.id, ("", 0))[1], "invoiced"
            else:
                wholesale_currency = live_currency
                wholesale_minor, wholesale_source = live_wholesale.get(customer.id, 0), "preview"
            comparable = retail_currency == wholesale_currency or not wholesale_minor or not retail_minor
            rows.append(
                MarginRow(
                    customer_id=customer.id,
                    customer_name=customer.name,
                    retail_currency=retail_currency,
                    retail_minor=retail_minor,
                    retail_source=retail_source,
                    wholesale_currency=wholesale_currency,
                    wholesale_minor=wholesale_minor,
                    wholesale_source=wholesale_source,
                    margin_minor=retail_minor - wholesale_minor if comparable else None,
                )
            )
        return MarginReport(partner_id=partner.id, period=period, customers=rows)


async def usage_rows(session: AsyncSession, tenant: TenantContext, period: str) -> AsyncIterator[UsageRecord]:
    """The tenant's raw usage records of ``period``, streamed."""
    period_bounds(period)
    async for row in UsageExportRepository(session, tenant).records_of(period):
        yield row


async def document_lines(documents: InvoiceRepository, invoice_id: uuid.UUID) -> AsyncIterator[InvoiceLine]:
    async for line in documents.stream_lines(invoice_id):
        yield line


async def issued_total(session: AsyncSession, tenant: TenantContext, period: str) -> int | None:
    """What Andon billed the customer for ``period`` (its retail invoice, less credit notes), or None
    when the period is not closed for it (reconciliation against Stripe's invoices)."""
    documents = await InvoiceRepository.for_tenant(session, tenant).of_period(period)
    return sum(d.total_minor for d in documents) if documents else None
