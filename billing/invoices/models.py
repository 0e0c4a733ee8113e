"""Invoices and credit notes: immutable documents, numbered without gaps per issuer.

The partner issues retail invoices to its customers (``tenant_id`` is the customer); the operator
issues wholesale invoices to partners (``tenant_id`` empty, ``partner_id`` the partner), with lines
per customer so the partner sees its cost per customer. A credit note is a new document that refers
to the invoice it credits, with negative amounts and its own numbering; nothing issued is ever
changed (the application role may not UPDATE or DELETE these tables on PostgreSQL).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from andon.platform.db.base import Base, RecordMixin
from andon.platform.db.types import UTCDateTime

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"
RETAIL = "retail"
WHOLESALE = "wholesale"
OPERATOR_ISSUER = "operator"


class Invoice(RecordMixin, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("issuer_key", "kind", "number"),
        Index("ix_invoices_partner_period", "partner_id", "period"),
        Index("ix_invoices_tenant_period", "tenant_id", "period"),
    )

    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # retail (partner to customer) or wholesale (operator to partner).
    channel: Mapped[str] = mapped_column(String(20), nullable=False)
    # "operator" or the issuing partner's id as text.
    issuer_key: Mapped[str] = mapped_column(String(40), nullable=False)
    issuer_name: Mapped[str] = mapped_column(String(200), nullable=False)
    # Retail: the issuing partner; wholesale: the partner billed.
    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("partners.id", ondelete="RESTRICT"), nullable=False)
    # Retail: the customer billed; wholesale: none.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("customers.id", ondelete="RESTRICT"), nullable=True
    )
    recipient_name: Mapped[str] = mapped_column(String(200), nullable=False)
    number: Mapped[str] = mapped_column(String(40), nullable=False)
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    total_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # What makes a second close a no-op: one invoice per channel, recipient and period.
    document_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    credited_invoice_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class InvoiceLine(RecordMixin, Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    invoice_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    # Whose usage the line prices (wholesale lines name each customer; retail ones the recipient).
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    customer_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    plan_key: Mapped[str | None] = mapped_column(String(63), nullable=True)
    plan_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    meter: Mapped[str] = mapped_column(String(64), nullable=False)
    # The tier, when the price has tiers ("1,001 to 10,000").
    tier: Mapped[str | None] = mapped_column(String(100), nullable=True)
    description: Mapped[str] = mapped_column(String(400), nullable=False)
    quantity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # As the price book states it (major units, exact decimal text); None for a fee.
    unit_price: Mapped[str | None] = mapped_column(String(40), nullable=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)


class InvoiceSequence(Base):
    """The last number each issuer gave each kind of document in a year; locked while a number is
    taken, in the same transaction as the document, so a rolled-back document leaves no gap."""

    __tablename__ = "invoice_sequences"

    issuer_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, nullable=False)
