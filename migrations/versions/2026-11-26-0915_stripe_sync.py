"""Stripe sync: mapped objects and processed webhooks

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_OPERATOR = "coalesce(current_setting('andon.operator', true), '') = 'on'"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
# A tenant's Stripe rows are read and written inside the tenant (sync, webhooks bound to the tenant
# the Stripe customer belongs to); the operator reads across tenants to reconcile them all.
_READ = f"{_IN_TENANT} OR {_OPERATOR}"
_TENANT_TABLES = ("stripe_links", "stripe_watermarks", "stripe_invoices")


def _record_columns() -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _tenant_columns(table: str) -> list[sa.schema.SchemaItem]:
    return [
        *_record_columns(),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["customers.id"], name=op.f(f"fk_{table}_tenant_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "stripe_links",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("andon_id", sa.String(length=200), nullable=False),
        sa.Column("stripe_id", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        *_tenant_columns("stripe_links"),
        sa.UniqueConstraint("tenant_id", "kind", "andon_id", name=op.f("uq_stripe_links_tenant_id_kind_andon_id")),
        sa.UniqueConstraint("stripe_id", name=op.f("uq_stripe_links_stripe_id")),
    )
    op.create_index(op.f("ix_stripe_links_tenant_id"), "stripe_links", ["tenant_id"], unique=False)
    op.create_table(
        "stripe_catalog",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("andon_id", sa.String(length=200), nullable=False),
        sa.Column("stripe_id", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        *_record_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_catalog")),
        sa.UniqueConstraint("kind", "andon_id", name=op.f("uq_stripe_catalog_kind_andon_id")),
    )
    op.create_table(
        "stripe_watermarks",
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("position", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pushed", sa.BigInteger(), nullable=False),
        *_tenant_columns("stripe_watermarks"),
        sa.UniqueConstraint("tenant_id", "stream", name=op.f("uq_stripe_watermarks_tenant_id_stream")),
    )
    op.create_index(op.f("ix_stripe_watermarks_tenant_id"), "stripe_watermarks", ["tenant_id"], unique=False)
    op.create_table(
        "stripe_webhook_events",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=300), nullable=False),
        *_record_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_webhook_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_stripe_webhook_events_event_id")),
    )
    op.create_table(
        "stripe_invoices",
        sa.Column("stripe_id", sa.String(length=255), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("event_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_type", sa.String(length=100), nullable=False),
        *_tenant_columns("stripe_invoices"),
        sa.UniqueConstraint("tenant_id", "stripe_id", name=op.f("uq_stripe_invoices_tenant_id_stripe_id")),
    )
    op.create_index(op.f("ix_stripe_invoices_tenant_id"), "stripe_invoices", ["tenant_id"], unique=False)
    op.create_index("ix_stripe_invoices_tenant_period", "stripe_invoices", ["tenant_id", "period"])
    if op.get_bind().dialect.name != "postgresql":
        return
    # stripe_catalog and stripe_webhook_events hold no tenant's data (Stripe ids of shared meters,
    # products and prices; ids of processed events), so they carry no policy.
    for table in _TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_read ON {table} FOR SELECT USING ({_READ})")
        op.execute(f"CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK ({_IN_TENANT})")
        op.execute(f"CREATE POLICY {table}_update ON {table} FOR UPDATE USING ({_IN_TENANT}) WITH CHECK ({_IN_TENANT})")


def downgrade() -> None:
    op.drop_index("ix_stripe_invoices_tenant_period", table_name="stripe_invoices")
    op.drop_index(op.f("ix_stripe_invoices_tenant_id"), table_name="stripe_invoices")
    op.drop_table("stripe_invoices")
    op.drop_table("stripe_webhook_events")
    op.drop_index(op.f("ix_stripe_watermarks_tenant_id"), table_name="stripe_watermarks")
    op.drop_table("stripe_watermarks")
    op.drop_table("stripe_catalog")
    op.drop_index(op.f("ix_stripe_links_tenant_id"), table_name="stripe_links")
    op.drop_table("stripe_links")
