"""brand assets

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 20:18:09.981836
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Row-level security (PostgreSQL only): a customer's logo lives inside the customer, like its plant.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)


def _enable_rls() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE customer_brands ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE customer_brands FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY customer_brands_scope ON customer_brands USING ({_IN_TENANT}) WITH CHECK ({_IN_TENANT})")


def _disable_rls() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP POLICY IF EXISTS customer_brands_scope ON customer_brands")


def upgrade() -> None:
    op.create_table('customer_brands',
    sa.Column('logo_png', sa.LargeBinary(), nullable=False),
    sa.Column('logo_version', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_customer_brands_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_brands')),
    sa.UniqueConstraint('tenant_id', name=op.f('uq_customer_brands_tenant_id'))
    )
    with op.batch_alter_table('customer_brands', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_brands_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('partner_brands', schema=None) as batch_op:
        batch_op.add_column(sa.Column('favicon_png', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('favicon_version', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('custom_css', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('css_version', sa.Integer(), nullable=False, server_default='0'))
    _enable_rls()



def downgrade() -> None:
    _disable_rls()
    with op.batch_alter_table('partner_brands', schema=None) as batch_op:
        batch_op.drop_column('css_version')
        batch_op.drop_column('custom_css')
        batch_op.drop_column('favicon_version')
        batch_op.drop_column('favicon_png')

    with op.batch_alter_table('customer_brands', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_brands_tenant_id'))

    op.drop_table('customer_brands')
