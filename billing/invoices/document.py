"""The printable forms of a document: HTML in the issuer's brand, and CSV of its lines and of the
raw usage behind it (written row by row, so an export never sits whole in memory)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from andon.billing.invoices.models import CREDIT_NOTE, WHOLESALE, InvoiceLine
from andon.billing.invoices.service import Document
from andon.billing.pricing.money import exponent, format_minor
from andon.billing.usage.models import UsageRecord
from andon.tenants.branding.service import Brand

_PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(["html"]),
)

LINE_COLUMNS = (
    "number",
    "position",
    "customer_id",
    "customer",
    "plan",
    "plan_version",
    "meter",
    "tier",
    "description",
    "quantity",
    "unit_price",
    "amount_minor",
    "amount",
    "currency",
)
USAGE_COLUMNS = ("occurred_at", "recorded_at", "period", "late", "meter", "quantity", "idempotency_key", "dimensions")


def render_html(document: Document, brand: Brand) -> str:
    invoice = document.invoice
    return _PAGES.get_template("invoice.html").render(
        title="Credit note" if invoice.kind == CREDIT_NOTE else "Invoice",
        invoice=invoice,
        lines=document.lines,
        credited_number=document.credited_number,
        per_customer=invoice.channel == WHOLESALE,
        brand=brand,
        money=lambda amount: format_minor(amount, invoice.currency),
    )


def _text(value: str | None) -> str | None:
    """Free text a spreadsheet must not take for a formula (CSV injection)."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def _row(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def major(amount: int, currency: str) -> str:
    """``1234, "EUR"`` → ``"12.34"``: exact, for spreadsheets."""
    return str(Decimal(amount).scaleb(-exponent(currency)))


async def lines_csv(number: str, currency: str, lines: AsyncIterator[InvoiceLine]) -> AsyncIterator[str]:
    yield _row(LINE_COLUMNS)
    async for line in lines:
        yield _row(
            (
                number,
                line.position,
                line.customer_id,
                _text(line.customer_name),
                line.plan_key,
                line.plan_version,
                line.meter,
                line.tier,
                _text(line.description),
                line.quantity,
                line.unit_price,
                line.amount_minor,
                major(line.amount_minor, currency),
                currency,
            )
        )


async def usage_csv(rows: AsyncIterator[UsageRecord]) -> AsyncIterator[str]:
    yield _row(USAGE_COLUMNS)
    async for row in rows:
        yield _row(
            (
                row.occurred_at.isoformat(),
                row.recorded_at.isoformat(),
                row.period,
                "true" if row.late else "false",
                row.meter,
                row.quantity,
                _text(row.idempotency_key),
                json.dumps(row.dimensions, sort_keys=True, separators=(",", ":")),
            )
        )
