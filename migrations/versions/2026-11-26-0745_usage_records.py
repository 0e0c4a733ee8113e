"""usage records

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-26 07:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_OPERATOR = "coalesce(current_setting('andon.operator', true), '') = 'on'"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
# Usage is read inside its tenant, by its partner across its customers (its revenue), and by the
# operator across partners (its wholesale); it is written inside its tenant and never changed
# (``andon db upgrade`` also revokes UPDATE and DELETE from the app role).
_READ = f"{_IN_TENANT} OR (partner_id = {_PARTNER} AND {_TENANT} IS NULL) OR {_OPERATOR}"


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("dimensions", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["customers.id"], name=op.f("fk_usage_records_tenant_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name=op.f("uq_usage_records_tenant_id_idempotency_key")),
    )
    op.create_index(op.f("ix_usage_records_tenant_id"), "usage_records", ["tenant_id"], unique=False)
    op.create_index("ix_usage_records_tenant_period_meter", "usage_records", ["tenant_id", "period", "meter"])
    op.create_index("ix_usage_records_partner_period", "usage_records", ["partner_id", "period"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE usage_records ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE usage_records FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY usage_records_read ON usage_records FOR SELECT USING ({_READ})")
    op.execute(f"CREATE POLICY usage_records_insert ON usage_records FOR INSERT WITH CHECK ({_IN_TENANT})")


def downgrade() -> None:
    op.drop_index("ix_usage_records_partner_period", table_name="usage_records")
    op.drop_index("ix_usage_records_tenant_period_meter", table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_tenant_id"), table_name="usage_records")
    op.drop_table("usage_records")
