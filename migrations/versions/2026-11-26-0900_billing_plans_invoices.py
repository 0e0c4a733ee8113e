"""plans, price books, subscriptions and invoices

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_OPERATOR = "coalesce(current_setting('andon.operator', true), '') = 'on'"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
# A partner working for itself, not inside one of its customers.
_AS_PARTNER = f"(partner_id = {_PARTNER} AND {_TENANT} IS NULL)"

# Price books and plans: the operator's (wholesale) are read by the operator and by partners (their
# cost); a partner's (retail) by the partner and inside its customers, never by the operator; each
# owner writes its own.
_BOOK_READ = (
    f"({_OPERATOR} AND partner_id IS NULL) OR partner_id = {_PARTNER}"
    f" OR partner_id IN (SELECT c.partner_id FROM customers c WHERE c.id = {_TENANT})"
    f" OR (partner_id IS NULL AND {_PARTNER} IS NOT NULL AND {_TENANT} IS NULL)"
)
_BOOK_WRITE = f"({_OPERATOR} AND partner_id IS NULL) OR {_AS_PARTNER}"
# A customer's subscription: inside the tenant; its partner reads them all when it closes a period,
# and the operator (which rates wholesale fees on the stretches a customer was subscribed; the plan
# versions they point at, the partner's retail prices, stay closed to it).
_SUB_READ = f"{_IN_TENANT} OR {_AS_PARTNER} OR {_OPERATOR}"
# A partner's wholesale subscription: the operator sets it, the partner reads it.
_PSUB_READ = f"{_OPERATOR} OR {_AS_PARTNER}"
# Documents: the customer reads its own (retail), the partner both those it issues and those it
# receives, the operator only those it issues (never a partner's retail prices).
_INVOICE_READ = f"{_IN_TENANT} OR {_AS_PARTNER} OR ({_OPERATOR} AND issuer_key = 'operator')"
_INVOICE_WRITE = (
    f"(channel = 'retail' AND issuer_key = {_PARTNER}::text AND {_AS_PARTNER})"
    f" OR (channel = 'wholesale' AND issuer_key = 'operator' AND {_OPERATOR})"
)
# A line is visible with its document, and written only by the document's issuer.
_LINE_READ = "EXISTS (SELECT 1 FROM invoices i WHERE i.id = invoice_id)"
_LINE_WRITE = (
    "EXISTS (SELECT 1 FROM invoices i WHERE i.id = invoice_id AND ("
    f"(i.issuer_key = {_PARTNER}::text AND {_TENANT} IS NULL) OR (i.issuer_key = 'operator' AND {_OPERATOR})))"
)
_SEQUENCE = f"(issuer_key = {_PARTNER}::text AND {_TENANT} IS NULL) OR (issuer_key = 'operator' AND {_OPERATOR})"

_POLICIES: dict[str, list[tuple[str, str, str]]] = {
    # table: (name, command, clause) — clause is USING for reads and deletes, WITH CHECK for inserts,
    # both for updates.
    "price_books": [("read", "SELECT", _BOOK_READ), ("write", "ALL", _BOOK_WRITE)],
    "plan_versions": [("read", "SELECT", _BOOK_READ), ("insert", "INSERT", _BOOK_WRITE)],
    "subscriptions": [("read", "SELECT", _SUB_READ), ("write", "ALL", _IN_TENANT)],
    "partner_subscriptions": [("read", "SELECT", _PSUB_READ), ("write", "ALL", _OPERATOR)],
    "invoices": [("read", "SELECT", _INVOICE_READ), ("insert", "INSERT", _INVOICE_WRITE)],
    "invoice_lines": [("read", "SELECT", _LINE_READ), ("insert", "INSERT", _LINE_WRITE)],
    "invoice_sequences": [("write", "ALL", _SEQUENCE)],
}


def _timestamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _segment() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("plan_version_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trial_ends_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "price_books",
        sa.Column("partner_id", sa.Uuid(), nullable=True),
        sa.Column("owner_key", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_price_books_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_books")),
        sa.UniqueConstraint("owner_key", "key", name=op.f("uq_price_books_owner_key_key")),
    )
    op.create_index(op.f("ix_price_books_partner_id"), "price_books", ["partner_id"], unique=False)
    op.create_table(
        "plan_versions",
        sa.Column("price_book_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=True),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("document", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["price_book_id"],
            ["price_books.id"],
            name=op.f("fk_plan_versions_price_book_id_price_books"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_versions")),
        sa.UniqueConstraint("price_book_id", "key", "version", name=op.f("uq_plan_versions_price_book_id_key_version")),
    )
    op.create_index(op.f("ix_plan_versions_partner_id"), "plan_versions", ["partner_id"], unique=False)
    op.create_index(op.f("ix_plan_versions_price_book_id"), "plan_versions", ["price_book_id"], unique=False)
    op.create_table(
        "subscriptions",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        *_segment(),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["plan_version_id"],
            ["plan_versions.id"],
            name=op.f("fk_subscriptions_plan_version_id_plan_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["customers.id"], name=op.f("fk_subscriptions_tenant_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(op.f("ix_subscriptions_partner_id"), "subscriptions", ["partner_id"], unique=False)
    op.create_index(op.f("ix_subscriptions_tenant_id"), "subscriptions", ["tenant_id"], unique=False)
    op.create_index("ix_subscriptions_tenant_starts", "subscriptions", ["tenant_id", "starts_at"], unique=False)
    op.create_table(
        "partner_subscriptions",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        *_segment(),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_partner_subscriptions_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_version_id"],
            ["plan_versions.id"],
            name=op.f("fk_partner_subscriptions_plan_version_id_plan_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_subscriptions")),
    )
    op.create_index(
        "ix_partner_subscriptions_partner_starts", "partner_subscriptions", ["partner_id", "starts_at"], unique=False
    )
    op.create_table(
        "invoices",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("issuer_key", sa.String(length=40), nullable=False),
        sa.Column("issuer_name", sa.String(length=200), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("recipient_name", sa.String(length=200), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document_key", sa.String(length=200), nullable=False),
        sa.Column("credited_invoice_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["credited_invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoices_credited_invoice_id_invoices"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_invoices_partner_id_partners"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["customers.id"], name=op.f("fk_invoices_tenant_id_customers"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("document_key", name=op.f("uq_invoices_document_key")),
        sa.UniqueConstraint("issuer_key", "kind", "number", name=op.f("uq_invoices_issuer_key_kind_number")),
    )
    op.create_index(op.f("ix_invoices_credited_invoice_id"), "invoices", ["credited_invoice_id"], unique=False)
    op.create_index("ix_invoices_partner_period", "invoices", ["partner_id", "period"], unique=False)
    op.create_index("ix_invoices_tenant_period", "invoices", ["tenant_id", "period"], unique=False)
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("customer_name", sa.String(length=200), nullable=True),
        sa.Column("plan_key", sa.String(length=63), nullable=True),
        sa.Column("plan_version", sa.Integer(), nullable=True),
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.String(length=100), nullable=True),
        sa.Column("description", sa.String(length=400), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit_price", sa.String(length=40), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lines_invoice_id_invoices"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
        sa.UniqueConstraint("invoice_id", "position", name=op.f("uq_invoice_lines_invoice_id_position")),
    )
    op.create_index(op.f("ix_invoice_lines_customer_id"), "invoice_lines", ["customer_id"], unique=False)
    op.create_table(
        "invoice_sequences",
        sa.Column("issuer_key", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issuer_key", "kind", "year", name=op.f("pk_invoice_sequences")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    # Invoices and their lines are also append-only for the app role: ``andon db upgrade`` revokes
    # UPDATE and DELETE on them (``APPEND_ONLY_TABLES``), and no policy here allows either.
    for table, policies in _POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        for name, command, clause in policies:
            if command == "SELECT":
                op.execute(f"CREATE POLICY {table}_{name} ON {table} FOR SELECT USING ({clause})")
            elif command == "INSERT":
                op.execute(f"CREATE POLICY {table}_{name} ON {table} FOR INSERT WITH CHECK ({clause})")
            else:
                op.execute(f"CREATE POLICY {table}_{name} ON {table} FOR ALL USING ({clause}) WITH CHECK ({clause})")


def downgrade() -> None:
    op.drop_table("invoice_sequences")
    op.drop_index(op.f("ix_invoice_lines_customer_id"), table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index("ix_invoices_tenant_period", table_name="invoices")
    op.drop_index("ix_invoices_partner_period", table_name="invoices")
    op.drop_index(op.f("ix_invoices_credited_invoice_id"), table_name="invoices")
    op.drop_table("invoices")
    op.drop_index("ix_partner_subscriptions_partner_starts", table_name="partner_subscriptions")
    op.drop_table("partner_subscriptions")
    op.drop_index("ix_subscriptions_tenant_starts", table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_tenant_id"), table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_partner_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_plan_versions_price_book_id"), table_name="plan_versions")
    op.drop_index(op.f("ix_plan_versions_partner_id"), table_name="plan_versions")
    op.drop_table("plan_versions")
    op.drop_index(op.f("ix_price_books_partner_id"), table_name="price_books")
    op.drop_table("price_books")
