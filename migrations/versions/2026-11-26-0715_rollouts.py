"""rollouts

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 07:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Row-level security (PostgreSQL only): a partner's rollouts are its own (and the operator's to see);
# they are written outside any customer's tenant.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_OPERATOR = "coalesce(current_setting('andon.operator', true), '') = 'on'"
_READ = f"{_OPERATOR} OR partner_id = {_PARTNER}"
_WRITE = f"{_OPERATOR} OR (partner_id = {_PARTNER} AND {_TENANT} IS NULL)"


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "rollouts",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("template_key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("waves", json, nullable=False),
        sa.Column("next_wave", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("results", json, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_rollouts_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["partner_templates.id"],
            name=op.f("fk_rollouts_template_id_partner_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    op.create_index(op.f("ix_rollouts_partner_id"), "rollouts", ["partner_id"], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE rollouts ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE rollouts FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY rollouts_read ON rollouts FOR SELECT USING ({_READ})")
    op.execute(f"CREATE POLICY rollouts_insert ON rollouts FOR INSERT WITH CHECK ({_WRITE})")
    op.execute(f"CREATE POLICY rollouts_update ON rollouts FOR UPDATE USING ({_WRITE}) WITH CHECK ({_WRITE})")
    op.execute(f"CREATE POLICY rollouts_delete ON rollouts FOR DELETE USING ({_WRITE})")


def downgrade() -> None:
    op.drop_index(op.f("ix_rollouts_partner_id"), table_name="rollouts")
    op.drop_table("rollouts")
