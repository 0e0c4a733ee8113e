"""What the customer's and the partner's finance pages share: the period chosen, usage by meter with
its daily chart, a document's lines with money formatted (``money.format_minor``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.invoices.models import Invoice
from andon.billing.invoices.service import Draft, period_bounds
from andon.billing.pricing.money import format_minor
from andon.billing.usage.meters import METERS, period_of
from andon.billing.usage.service import MeterTotal, UsageService
from andon.frontend.finance.chart import Series, usage_chart
from andon.platform.db.types import utcnow
from andon.platform.tenancy.context import TenantContext

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
# The periods a page offers: this month and the five before it.
PERIODS_SHOWN = 6


def chosen_period(raw: str | None, now: datetime | None = None) -> str:
    """The period asked for, or the current one when none (or a malformed one) is asked for."""
    return raw if raw and PERIOD.match(raw) else period_of(now or utcnow())


def recent_periods(now: datetime | None = None) -> list[str]:
    year, month = (int(p) for p in period_of(now or utcnow()).split("-"))
    found = []
    for _ in range(PERIODS_SHOWN):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return found


def money(amount: int, currency: str | None) -> str:
    return format_minor(amount, currency) if currency else "—"


def days_of(period: str, now: datetime | None = None) -> list[str]:
    """The days of the period up to today (the whole month once it is over)."""
    start, end = period_bounds(period)
    today = (now or utcnow()).date()
    last = min(end.date() - timedelta(days=1), max(today, start.date()))
    first: date = start.date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


@dataclass(frozen=True, slots=True)
class UsageView:
    period: str
    totals: list[MeterTotal]
    days: list[str]
    # meter key -> {day: quantity}
    daily: dict[str, dict[str, int]]
    chart: Markup


async def usage_view(session: AsyncSession, tenant: TenantContext, period: str, *, who: str) -> UsageView:
    """The period's totals and daily series of one customer, both aggregated in SQL."""
    usage = UsageService(session, tenant)
    totals = await usage.totals(period)
    daily = {key: dict(points) for key, points in (await usage.daily(period)).items()}
    days = days_of(period)
    # A late record's day may lie before the period: it still shows in the table, not on the axis.
    days = sorted(set(days) | {d for points in daily.values() for d in points if d[:7] == period})
    series = [
        Series(key, METERS[key].title, METERS[key].unit, points, additive=METERS[key].aggregation == "sum")
        for key, points in daily.items()
    ]
    chart = usage_chart(series, days, label=f"Usage by meter per day, {who}, {period}")
    return UsageView(period, totals, days, daily, chart)


@dataclass(frozen=True, slots=True)
class LineView:
    description: str
    tier: str | None
    quantity: int
    unit_price: str | None
    amount: str
    customer_name: str | None


@dataclass(frozen=True, slots=True)
class DraftView:
    currency: str | None
    lines: list[LineView]
    total: str
    total_minor: int


def draft_view(draft: Draft) -> DraftView:
    currency = draft.currency
    lines = [
        LineView(
            line.description,
            line.tier,
            line.quantity,
            line.unit_price,
            money(line.amount, currency),
            line.customer_name,
        )
        for line in draft.lines
    ]
    return DraftView(currency, lines, money(draft.total, currency), draft.total)


@dataclass(frozen=True, slots=True)
class DocumentView:
    id: str
    number: str
    kind: str
    channel: str
    period: str
    recipient: str
    issuer: str
    issued_at: datetime
    total: str
    credited: bool
    reason: str | None


def document_view(row: Invoice) -> DocumentView:
    return DocumentView(
        str(row.id),
        row.number,
        row.kind,
        row.channel,
        row.period,
        row.recipient_name,
        row.issuer_name,
        row.issued_at,
        format_minor(row.total_minor, row.currency),
        row.credited_invoice_id is not None,
        row.reason,
    )
