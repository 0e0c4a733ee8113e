"""All SQL of invoices, credit notes, their lines and numbers, and the raw-usage export.

A document repository is built for one party's view (a customer, a partner, the operator) and every
statement carries that view's conditions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.invoices.models import CREDIT_NOTE, OPERATOR_ISSUER, RETAIL, Invoice, InvoiceLine, InvoiceSequence
from andon.billing.usage.models import UsageRecord
from andon.platform.db.repository import TenantRepository
from andon.platform.db.scope import is_postgres
from andon.platform.tenancy.context import TenantContext

# Rows fetched per round trip while a CSV streams.
STREAM_BATCH = 500


class InvoiceRepository:
    def __init__(self, session: AsyncSession, view: list[ColumnElement[bool]]) -> None:
        self.session = session
        self.view = view

    @classmethod
    def for_tenant(cls, session: AsyncSession, tenant: TenantContext) -> InvoiceRepository:
        """A customer's own documents (retail, both invoices and credit notes)."""
        return cls(session, [Invoice.tenant_id == tenant.tenant_id, Invoice.channel == RETAIL])

    @classmethod
    def for_partner(cls, session: AsyncSession, partner_id: uuid.UUID) -> InvoiceRepository:
        """What a partner issued to its customers and received from the operator; ``partner_id`` was
        fetched within the caller's reach."""
        return cls(session, [Invoice.partner_id == partner_id])

    @classmethod
    def for_operator(cls, session: AsyncSession, partner_id: uuid.UUID | None = None) -> InvoiceRepository:
        """What the operator issued (to one partner when given); never a partner's retail documents."""
        where = [Invoice.issuer_key == OPERATOR_ISSUER]
        if partner_id is not None:
            where.append(Invoice.partner_id == partner_id)
        return cls(session, where)

    def _select(self) -> Select[Invoice]:
        return select(Invoice).where(*self.view)

    async def get(self, invoice_id: uuid.UUID) -> Invoice | None:
        return (await self.session.execute(self._select().where(Invoice.id == invoice_id))).scalar_one_or_none()

    async def list(
        self, *, period: str | None = None, channel: str | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[Invoice]:
        stmt = self._select()
        if period is not None:
            stmt = stmt.where(Invoice.period == period)
        if channel is not None:
            stmt = stmt.where(Invoice.channel == channel)
        stmt = stmt.order_by(Invoice.issued_at, Invoice.issuer_key, Invoice.kind, Invoice.sequence)
        return (await self.session.execute(stmt.limit(limit).offset(offset))).scalars().all()

    async def existing_keys(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        stmt = select(Invoice.document_key).where(*self.view, Invoice.document_key.in_(sorted(set(keys))))
        return set((await self.session.execute(stmt)).scalars().all())

    async def credits_of(self, invoice_id: uuid.UUID) -> Sequence[Invoice]:
        stmt = (
            self._select()
            .where(Invoice.kind == CREDIT_NOTE, Invoice.credited_invoice_id == invoice_id)
            .order_by(Invoice.sequence)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def of_period(self, period: str) -> Sequence[Invoice]:
        stmt = self._select().where(Invoice.period == period)
        return (await self.session.execute(stmt)).scalars().all()

    async def lines(self, invoice_id: uuid.UUID) -> Sequence[InvoiceLine]:
        stmt = (
            select(InvoiceLine)
            .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
            .where(*self.view, InvoiceLine.invoice_id == invoice_id)
            .order_by(InvoiceLine.position)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def lines_of(self, invoice_ids: Sequence[uuid.UUID]) -> Sequence[InvoiceLine]:
        if not invoice_ids:
            return []
        stmt = (
            select(InvoiceLine)
            .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
            .where(*self.view, InvoiceLine.invoice_id.in_(sorted(set(invoice_ids))))
            .order_by(InvoiceLine.invoice_id, InvoiceLine.position)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def stream_lines(self, invoice_id: uuid.UUID) -> AsyncIterator[InvoiceLine]:
        """The document's lines, fetched in batches as they are consumed (never all at once)."""
        stmt = (
            select(InvoiceLine)
            .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
            .where(*self.view, InvoiceLine.invoice_id == invoice_id)
            .order_by(InvoiceLine.position)
            .execution_options(yield_per=STREAM_BATCH)
        )
        result = await self.session.stream_scalars(stmt)
        async for line in result:
            yield line

    async def add(self, invoice: Invoice, lines: Sequence[InvoiceLine]) -> None:
        self.session.add(invoice)
        await self.session.flush()
        for line in lines:
            line.invoice_id = invoice.id
        self.session.add_all(lines)
        await self.session.flush()


class SequenceRepository:
    def __init__(self, session: AsyncSession, issuer_key: str) -> None:
        """``issuer_key`` is the caller's own (checked by the service before it issues anything)."""
        self.session = session
        self.issuer_key = issuer_key

    async def next(self, kind: str, year: int) -> int:
        """The next number of this kind in this year. The row stays locked until the transaction
        ends, so concurrent issuers queue and a rolled-back document gives its number back."""
        insert = pg_insert if is_postgres(self.session) else sqlite_insert
        stmt = (
            insert(InvoiceSequence)
            .values(issuer_key=self.issuer_key, kind=kind, year=year, last_value=1)
            .on_conflict_do_update(
                index_elements=["issuer_key", "kind", "year"],
                set_={"last_value": InvoiceSequence.last_value + 1},
            )
            .returning(InvoiceSequence.last_value)
        )
        return int((await self.session.execute(stmt)).scalar_one())


class UsageExportRepository(TenantRepository[UsageRecord]):
    """A tenant's raw usage records for export (the usage domain aggregates; this only reads rows)."""

    model = UsageRecord

    async def records_of(self, period: str) -> AsyncIterator[UsageRecord]:
        stmt = (
            self.select()
            .where(UsageRecord.period == period)
            .order_by(UsageRecord.occurred_at, UsageRecord.id)
            .execution_options(yield_per=STREAM_BATCH)
        )
        result = await self.session.stream_scalars(stmt)
        async for row in result:
            yield row
