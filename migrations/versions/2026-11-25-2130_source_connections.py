"""source connections

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 21:25:31.697552
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Row-level security (PostgreSQL only). A webhook names only its connection, so the connection is
# found before any tenant is known, in the authentication lookup mode (as API keys are); everything
# after that, deliveries included, happens inside the connection's tenant.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_AUTH = "coalesce(current_setting('andon.auth_lookup', true), '') = 'on'"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
POLICIES = {"source_connections": f"{_AUTH} OR {_IN_TENANT}", "webhook_deliveries": _IN_TENANT}


def _enable_rls() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, rule in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({rule}) WITH CHECK ({rule})")


def _disable_rls() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS {table}_scope ON {table}")


def upgrade() -> None:
    op.create_table('source_connections',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=500), nullable=False),
    sa.Column('event_type', sa.String(length=255), nullable=True),
    sa.Column('verifier', sa.String(length=30), nullable=False),
    sa.Column('signature_header', sa.String(length=100), nullable=True),
    sa.Column('signature_prefix', sa.String(length=50), nullable=False),
    sa.Column('digest_encoding', sa.String(length=10), nullable=False),
    sa.Column('secret_sealed', sa.Text(), nullable=False),
    sa.Column('previous_secret_sealed', sa.Text(), nullable=True),
    sa.Column('previous_secret_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('secret_rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tolerance_seconds', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('deliveries_accepted', sa.Integer(), nullable=False),
    sa.Column('deliveries_duplicate', sa.Integer(), nullable=False),
    sa.Column('deliveries_refused', sa.Integer(), nullable=False),
    sa.Column('last_delivery_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_delivery_outcome', sa.String(length=20), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_source_connections_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_connections')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_source_connections_tenant_id_name'))
    )
    with op.batch_alter_table('source_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_source_connections_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('webhook_id', sa.String(length=255), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('event_ids', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['source_connections.id'], name=op.f('fk_webhook_deliveries_connection_id_source_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_webhook_deliveries_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_connection_received', ['tenant_id', 'connection_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_tenant_id'), ['tenant_id'], unique=False)
    _enable_rls()



def downgrade() -> None:
    _disable_rls()
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_tenant_id'))
        batch_op.drop_index('ix_webhook_deliveries_connection_received')

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('source_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_source_connections_tenant_id'))

    op.drop_table('source_connections')
