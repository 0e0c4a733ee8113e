"""parameter defaults

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-26 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_OPERATOR = "coalesce(current_setting('andon.operator', true), '') = 'on'"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
# A partner's values are read by its customers (their deployments inherit them), written by it alone.
_PARTNER_READ = (
    f"{_OPERATOR} OR partner_id = {_PARTNER}"
    f" OR partner_id IN (SELECT c.partner_id FROM customers c WHERE c.id = {_TENANT})"
)
_PARTNER_WRITE = f"{_OPERATOR} OR (partner_id = {_PARTNER} AND {_TENANT} IS NULL)"


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "partner_parameter_defaults",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("template_key", sa.String(length=64), nullable=False),
        sa.Column("values", json, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_partner_parameter_defaults_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_parameter_defaults")),
        sa.UniqueConstraint(
            "partner_id", "template_key", name=op.f("uq_partner_parameter_defaults_partner_id_template_key")
        ),
    )
    op.create_index(
        op.f("ix_partner_parameter_defaults_partner_id"), "partner_parameter_defaults", ["partner_id"], unique=False
    )
    op.create_table(
        "customer_parameter_defaults",
        sa.Column("template_key", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=True),
        sa.Column("values", json, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_customer_parameter_defaults_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["customers.id"],
            name=op.f("fk_customer_parameter_defaults_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_parameter_defaults")),
        sa.UniqueConstraint(
            "tenant_id",
            "template_key",
            "site_id",
            name=op.f("uq_customer_parameter_defaults_tenant_id_template_key_site_id"),
        ),
    )
    op.create_index(
        op.f("ix_customer_parameter_defaults_tenant_id"), "customer_parameter_defaults", ["tenant_id"], unique=False
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("partner_parameter_defaults", "customer_parameter_defaults"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    t = "partner_parameter_defaults"
    op.execute(f"CREATE POLICY {t}_read ON {t} FOR SELECT USING ({_PARTNER_READ})")
    op.execute(f"CREATE POLICY {t}_insert ON {t} FOR INSERT WITH CHECK ({_PARTNER_WRITE})")
    op.execute(f"CREATE POLICY {t}_update ON {t} FOR UPDATE USING ({_PARTNER_WRITE}) WITH CHECK ({_PARTNER_WRITE})")
    op.execute(f"CREATE POLICY {t}_delete ON {t} FOR DELETE USING ({_PARTNER_WRITE})")
    t = "customer_parameter_defaults"
    op.execute(f"CREATE POLICY {t}_scope ON {t} USING ({_IN_TENANT}) WITH CHECK ({_IN_TENANT})")


def downgrade() -> None:
    op.drop_index(op.f("ix_customer_parameter_defaults_tenant_id"), table_name="customer_parameter_defaults")
    op.drop_table("customer_parameter_defaults")
    op.drop_index(op.f("ix_partner_parameter_defaults_partner_id"), table_name="partner_parameter_defaults")
    op.drop_table("partner_parameter_defaults")
