"""alerts and incidents

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 21:29:29.443377
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Row-level security (PostgreSQL only): alerts, incidents and their bookkeeping live inside the tenant.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
TABLES = ("alarm_rates", "alerts", "incident_entries", "incidents")


def _enable_rls() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({_IN_TENANT}) WITH CHECK ({_IN_TENANT})")


def _disable_rls() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS {table}_scope ON {table}")


def upgrade() -> None:
    op.create_table('alarm_rates',
    sa.Column('site_key', sa.String(length=255), nullable=False),
    sa.Column('minute', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_alarm_rates_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarm_rates')),
    sa.UniqueConstraint('tenant_id', 'site_key', 'minute', name=op.f('uq_alarm_rates_tenant_id_site_key_minute'))
    )
    with op.batch_alter_table('alarm_rates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alarm_rates_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('alerts',
    sa.Column('dedup_key', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('type', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=True),
    sa.Column('asset_id', sa.Uuid(), nullable=True),
    sa.Column('incident_id', sa.Uuid(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_event_id', sa.Uuid(), nullable=False),
    sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_count', sa.Integer(), nullable=False),
    sa.Column('chattering', sa.Boolean(), nullable=False),
    sa.Column('notifications', sa.Integer(), nullable=False),
    sa.Column('shelved_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shelved_reason', sa.Text(), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=200), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_alerts_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index('ix_alerts_tenant_dedup_status', ['tenant_id', 'dedup_key', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_alerts_tenant_status', ['tenant_id', 'status'], unique=False)

    op.create_table('incident_entries',
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('alert_id', sa.Uuid(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_incident_entries_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_entries'))
    )
    with op.batch_alter_table('incident_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_entries_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_entries_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('incidents',
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('priority', sa.String(length=2), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=True),
    sa.Column('asset_id', sa.Uuid(), nullable=True),
    sa.Column('site_key', sa.String(length=255), nullable=True),
    sa.Column('alert_count', sa.Integer(), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('notifications', sa.Integer(), nullable=False),
    sa.Column('merged_into', sa.Uuid(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_incidents_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incidents_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_incidents_tenant_status', ['tenant_id', 'status'], unique=False)
    _enable_rls()


def downgrade() -> None:
    _disable_rls()
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_tenant_status')
        batch_op.drop_index(batch_op.f('ix_incidents_tenant_id'))

    op.drop_table('incidents')
    with op.batch_alter_table('incident_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_entries_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_incident_entries_incident_id'))

    op.drop_table('incident_entries')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_tenant_status')
        batch_op.drop_index(batch_op.f('ix_alerts_tenant_id'))
        batch_op.drop_index('ix_alerts_tenant_dedup_status')
        batch_op.drop_index(batch_op.f('ix_alerts_incident_id'))

    op.drop_table('alerts')
    with op.batch_alter_table('alarm_rates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alarm_rates_tenant_id'))

    op.drop_table('alarm_rates')
