"""partner template library

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 06:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Row-level security (PostgreSQL only): a partner's library is its own, readable by its customers
# (they deploy from it) and by the operator; only the partner itself (or the operator) writes it.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_OPERATOR = "coalesce(current_setting('andon.operator', true), '') = 'on'"
_READ = (
    f"{_OPERATOR} OR partner_id = {_PARTNER}"
    f" OR partner_id IN (SELECT c.partner_id FROM customers c WHERE c.id = {_TENANT})"
)
_WRITE = f"{_OPERATOR} OR (partner_id = {_PARTNER} AND {_TENANT} IS NULL)"
TABLES = ("partner_templates", "template_versions")


def upgrade() -> None:
    op.create_table(
        "partner_templates",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("upstream_key", sa.String(length=64), nullable=True),
        sa.Column("upstream_version", sa.String(length=20), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_partner_templates_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_templates")),
        sa.UniqueConstraint("partner_id", "key", name=op.f("uq_partner_templates_partner_id_key")),
    )
    op.create_index(op.f("ix_partner_templates_partner_id"), "partner_templates", ["partner_id"], unique=False)
    op.create_table(
        "template_versions",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("yaml", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.String(length=200), nullable=True),
        sa.Column("deprecated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_template_versions_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["partner_templates.id"],
            name=op.f("fk_template_versions_template_id_partner_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_versions")),
        sa.UniqueConstraint("template_id", "version", name=op.f("uq_template_versions_template_id_version")),
    )
    op.create_index(op.f("ix_template_versions_template_id"), "template_versions", ["template_id"], unique=False)
    op.create_index("ix_template_versions_partner_status", "template_versions", ["partner_id", "status"], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_read ON {table} FOR SELECT USING ({_READ})")
        op.execute(f"CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK ({_WRITE})")
        op.execute(f"CREATE POLICY {table}_update ON {table} FOR UPDATE USING ({_WRITE}) WITH CHECK ({_WRITE})")
        op.execute(f"CREATE POLICY {table}_delete ON {table} FOR DELETE USING ({_WRITE})")


def downgrade() -> None:
    op.drop_index("ix_template_versions_partner_status", table_name="template_versions")
    op.drop_index(op.f("ix_template_versions_template_id"), table_name="template_versions")
    op.drop_table("template_versions")
    op.drop_index(op.f("ix_partner_templates_partner_id"), table_name="partner_templates")
    op.drop_table("partner_templates")
