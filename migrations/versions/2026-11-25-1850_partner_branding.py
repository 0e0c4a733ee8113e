"""partner branding

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:50:15.743573
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Row-level security (PostgreSQL only): a partner's brand is its own, its customers' (they work under
# it) and the operator's; public pages find it by host name in the authentication lookup mode.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_OPERATOR = "coalesce(current_setting('andon.operator', true), '') = 'on'"
_AUTH = "coalesce(current_setting('andon.auth_lookup', true), '') = 'on'"
_RULE = (
    f"{_AUTH} OR {_OPERATOR} OR partner_id = {_PARTNER}"
    f" OR partner_id IN (SELECT c.partner_id FROM customers c WHERE c.id = {_TENANT})"
)


def _enable_rls() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE partner_brands ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE partner_brands FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY partner_brands_scope ON partner_brands USING ({_RULE}) WITH CHECK ({_RULE})")


def _disable_rls() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP POLICY IF EXISTS partner_brands_scope ON partner_brands")


def upgrade() -> None:
    op.create_table('partner_brands',
    sa.Column('partner_id', sa.Uuid(), nullable=False),
    sa.Column('product_name', sa.String(length=100), nullable=False),
    sa.Column('primary_colour', sa.String(length=7), nullable=False),
    sa.Column('accent_colour', sa.String(length=7), nullable=False),
    sa.Column('support_email', sa.String(length=320), nullable=True),
    sa.Column('support_url', sa.String(length=500), nullable=True),
    sa.Column('hosts', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('logo_png', sa.LargeBinary(), nullable=True),
    sa.Column('logo_version', sa.Integer(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_partner_brands_partner_id_partners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_brands')),
    sa.UniqueConstraint('partner_id', name=op.f('uq_partner_brands_partner_id'))
    )
    _enable_rls()


def downgrade() -> None:
    _disable_rls()
    op.drop_table('partner_brands')
