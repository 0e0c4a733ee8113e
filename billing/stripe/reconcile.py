"""Andon's ledger against Stripe's, for one period: each meter's total per customer against Stripe's
meter event summary, the invoices Stripe's webhooks reported against Stripe's invoices, and (once
Andon's own invoice for the period is given) its total against Stripe's. Every difference is listed;
nothing is corrected."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.stripe.client import params
from andon.billing.stripe.repository import StripeCatalog, StripeInvoiceRepository, StripeLinkRepository
from andon.billing.stripe.sync import CUSTOMER
from andon.billing.usage.meters import period_end, period_of
from andon.billing.usage.service import UsageService
from andon.platform.tenancy.context import TenantContext

if TYPE_CHECKING:
    from stripe import StripeClient


@dataclass(frozen=True, slots=True)
class Difference:
    tenant_id: uuid.UUID
    kind: str  # meter | invoice | invoice_total
    subject: str
    andon: int | None
    stripe: int | None
    detail: str

    def line(self) -> str:
        def shown(value: int | None) -> str:
            return "none" if value is None else str(value)

        return (
            f"{self.tenant_id} {self.kind} {self.subject}: andon {shown(self.andon)}, "
            f"stripe {shown(self.stripe)} ({self.detail})"
        )


@dataclass
class Reconciliation:
    period: str
    customers: int = 0
    # Meters and invoices compared.
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.differences


def period_start(period: str) -> datetime:
    year, month = (int(part) for part in period.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


async def reconcile_tenant(
    client: StripeClient,
    session: AsyncSession,
    tenant: TenantContext,
    period: str,
    report: Reconciliation,
    *,
    andon_invoice_total: int | None = None,
) -> None:
    """Adds the tenant's differences for the period to ``report``."""
    link = await StripeLinkRepository(session, tenant).get_link(CUSTOMER, str(tenant.tenant_id))
    if link is None:
        return
    report.customers += 1
    customer = link.stripe_id
    start, end = int(period_start(period).timestamp()), int(period_end(period).timestamp())
    ours = {t.meter: t.quantity for t in await UsageService(session, tenant).totals(period)}
    meters = {e.andon_id: e.stripe_id for e in await StripeCatalog(session).of_kind("meter")}

    def differ(kind: str, subject: str, andon: int | None, stripe: int | None, detail: str) -> None:
        report.differences.append(Difference(tenant.tenant_id, kind, subject, andon, stripe, detail))

    for meter in sorted(set(ours) | set(meters)):
        report.checked += 1
        if meter not in meters:
            differ("meter", meter, ours[meter], None, "no Stripe meter: run the sync")
            continue
        summaries = await client.v1.billing.meters.event_summaries.list_async(
            meters[meter], params({"customer": customer, "start_time": start, "end_time": end})
        )
        value = sum((Decimal(str(s.aggregated_value)) for s in summaries.data), Decimal(0))
        theirs = int(value) if value == value.to_integral_value() else None
        if theirs is None or theirs != ours.get(meter, 0):
            differ("meter", meter, ours.get(meter, 0), theirs, f"Stripe's meter summary is {value}")

    recorded = {i.stripe_id: i for i in await StripeInvoiceRepository(session, tenant).in_period(period)}
    listing = await client.v1.invoices.list_async(params({"customer": customer, "limit": 100}))
    billed = 0
    seen: set[str] = set()
    async for invoice in listing.auto_paging_iter():
        if invoice.period_start is None or period_of(datetime.fromtimestamp(invoice.period_start, UTC)) != period:
            continue
        seen.add(invoice.id)
        report.checked += 1
        if invoice.status != "void":
            billed += invoice.total
        mine = recorded.get(invoice.id)
        if mine is None:
            differ("invoice", invoice.id, None, invoice.total, f"{invoice.status} in Stripe, no webhook recorded it")
        elif mine.total != invoice.total or mine.status != invoice.status:
            differ(
                "invoice",
                invoice.id,
                mine.total,
                invoice.total,
                f"recorded {mine.status}, Stripe says {invoice.status}",
            )
    for stripe_id in sorted(set(recorded) - seen):
        report.checked += 1
        differ("invoice", stripe_id, recorded[stripe_id].total, None, "recorded from a webhook, not in Stripe's list")
    if andon_invoice_total is not None:
        report.checked += 1
        if andon_invoice_total != billed:
            differ("invoice_total", period, andon_invoice_total, billed, "Andon's invoice against Stripe's invoices")
