"""outbound connections: a tenant's configured connector instances and the record of their calls

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 03:26:28.181151
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Row-level security (PostgreSQL only): both tables live inside their tenant.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
POLICIES = {"outbound_connections": _IN_TENANT, "connector_calls": _IN_TENANT}


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
    op.create_table('outbound_connections',
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('secrets_sealed', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('relay_target', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('timeout_seconds', sa.Integer(), nullable=False),
    sa.Column('rate_per_second', sa.Integer(), nullable=False),
    sa.Column('last_check_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_check_ok', sa.Boolean(), nullable=True),
    sa.Column('last_check', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_outbound_connections_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_connections')),
    sa.UniqueConstraint('tenant_id', 'key', name=op.f('uq_outbound_connections_tenant_id_key'))
    )
    with op.batch_alter_table('outbound_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbound_connections_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('connector_calls',
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('capability', sa.String(length=60), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=True),
    sa.Column('step_key', sa.String(length=100), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('latency_ms', sa.Double(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['outbound_connections.id'], name=op.f('fk_connector_calls_connection_id_outbound_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_connector_calls_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_calls'))
    )
    with op.batch_alter_table('connector_calls', schema=None) as batch_op:
        batch_op.create_index('ix_connector_calls_connection_created', ['connection_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_connector_calls_tenant_id'), ['tenant_id'], unique=False)

    _enable_rls()


def downgrade() -> None:
    _disable_rls()
    with op.batch_alter_table('connector_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connector_calls_tenant_id'))
        batch_op.drop_index('ix_connector_calls_connection_created')

    op.drop_table('connector_calls')
    with op.batch_alter_table('outbound_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_connections_tenant_id'))

    op.drop_table('outbound_connections')
