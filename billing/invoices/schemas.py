"""API shapes of previews, invoices, credit notes and the margin report."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Period = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


class LineRead(msgspec.Struct, kw_only=True):
    position: int
    customer_id: uuid.UUID | None
    customer_name: str | None
    plan: str | None
    plan_version: int | None
    meter: str
    tier: str | None
    description: str
    quantity: int
    # Major units as the price book states it; None for a fee.
    unit_price: str | None
    amount_minor: int


class PreviewRead(msgspec.Struct, kw_only=True):
    channel: str
    period: str
    # None when nothing is billed (no plan in the period).
    currency: str | None
    lines: list[LineRead]
    total_minor: int
    # Usage may still arrive (and plans change) until the period is closed.
    final: bool = False


class InvoiceRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    kind: str
    channel: str
    number: str
    issuer: str
    issuer_name: str
    partner_id: uuid.UUID
    customer_id: uuid.UUID | None
    recipient_name: str
    period: str
    currency: str
    total_minor: int
    issued_at: datetime
    credited_invoice_id: uuid.UUID | None
    reason: str | None
    lines: list[LineRead] | None = None


class CloseRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    period: Period


class CloseResult(msgspec.Struct, kw_only=True):
    period: str
    # Only the documents this call created: a second close of the same period creates none.
    created: list[InvoiceRead]


class CreditLineCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=400)]
    # What is credited, in minor units (the credit note shows it negative).
    amount_minor: Annotated[int, msgspec.Meta(gt=0)]


class CreditNoteCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    # None: credit the whole invoice, line by line (only when nothing was credited yet).
    lines: Annotated[list[CreditLineCreate], msgspec.Meta(min_length=1, max_length=200)] | None = None


class MarginRow(msgspec.Struct, kw_only=True):
    customer_id: uuid.UUID
    customer_name: str
    retail_currency: str | None
    retail_minor: int
    # "invoiced" (issued documents, credit notes included) or "preview" (the live figure).
    retail_source: str
    wholesale_currency: str | None
    wholesale_minor: int
    wholesale_source: str
    # Retail minus wholesale; None when the two are in different currencies.
    margin_minor: int | None


class MarginReport(msgspec.Struct, kw_only=True):
    partner_id: uuid.UUID
    period: str
    customers: list[MarginRow]
