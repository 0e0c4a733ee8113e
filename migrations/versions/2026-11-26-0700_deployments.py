"""deployments

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Row-level security (PostgreSQL only): a deployment lives inside its tenant.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "deployments",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("template_key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("library_template_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("site_ids", json, nullable=False),
        sa.Column("params", json, nullable=False),
        sa.Column("resolved", json, nullable=False),
        sa.Column("previous_resolved", json, nullable=True),
        sa.Column("bindings", json, nullable=False),
        sa.Column("messages", json, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("workflow_id", sa.Uuid(), nullable=True),
        sa.Column("previous_version", sa.String(length=20), nullable=True),
        sa.Column("previous_workflow_id", sa.Uuid(), nullable=True),
        sa.Column("deployed_by", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["library_template_id"],
            ["partner_templates.id"],
            name=op.f("fk_deployments_library_template_id_partner_templates"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["previous_workflow_id"],
            ["workflows.id"],
            name=op.f("fk_deployments_previous_workflow_id_workflows"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["customers.id"], name=op.f("fk_deployments_tenant_id_customers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_deployments_workflow_id_workflows"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("tenant_id", "key", name=op.f("uq_deployments_tenant_id_key")),
    )
    op.create_index(op.f("ix_deployments_tenant_id"), "deployments", ["tenant_id"], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE deployments ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE deployments FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY deployments_scope ON deployments USING ({_IN_TENANT}) WITH CHECK ({_IN_TENANT})")


def downgrade() -> None:
    op.drop_index(op.f("ix_deployments_tenant_id"), table_name="deployments")
    op.drop_table("deployments")
