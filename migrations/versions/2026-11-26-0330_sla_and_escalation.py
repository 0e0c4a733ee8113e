"""sla and escalation

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Row-level security (PostgreSQL only), as in 0009. The scheduler pages and records breaches after
# binding the timer's tenant, so these tables need no scheduler mode of their own.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
POLICIES = {
    "escalations": _IN_TENANT,
    "escalation_pages": _IN_TENANT,
    "sla_breaches": _IN_TENANT,
}
_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


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


def _record_columns() -> list[sa.Column[object]]:
    return [
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by', sa.String(length=200), nullable=True))
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ref_id', sa.Uuid(), nullable=True))

    op.create_table('escalations',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=63), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=True),
    sa.Column('incident_id', sa.Uuid(), nullable=True),
    sa.Column('alert_id', sa.Uuid(), nullable=True),
    sa.Column('levels', _JSON, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_page_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=200), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    *_record_columns(),
    sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'], name=op.f('fk_escalations_run_id_workflow_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_escalations_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalations')),
    sa.UniqueConstraint('run_id', 'key', name=op.f('uq_escalations_run_id_key'))
    )
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalations_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalations_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_escalations_tenant_status', ['tenant_id', 'status'], unique=False)

    op.create_table('escalation_pages',
    sa.Column('escalation_id', sa.Uuid(), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('repeat', sa.Integer(), nullable=False),
    sa.Column('targets', _JSON, nullable=False),
    sa.Column('paged', _JSON, nullable=False),
    sa.Column('paged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivery', sa.String(length=20), nullable=False),
    *_record_columns(),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], name=op.f('fk_escalation_pages_escalation_id_escalations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_escalation_pages_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation_pages')),
    sa.UniqueConstraint('escalation_id', 'number', name=op.f('uq_escalation_pages_escalation_id_number'))
    )
    with op.batch_alter_table('escalation_pages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalation_pages_escalation_id'), ['escalation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalation_pages_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalation_pages_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('sla_breaches',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=True),
    sa.Column('site_id', sa.Uuid(), nullable=True),
    sa.Column('policy', sa.String(length=63), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('breached_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('alert_id', sa.Uuid(), nullable=True),
    *_record_columns(),
    sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'], name=op.f('fk_sla_breaches_run_id_workflow_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_sla_breaches_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_breaches')),
    sa.UniqueConstraint('run_id', 'policy', 'kind', name=op.f('uq_sla_breaches_run_id_policy_kind'))
    )
    with op.batch_alter_table('sla_breaches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sla_breaches_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sla_breaches_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_sla_breaches_tenant_breached', ['tenant_id', 'breached_at'], unique=False)
    _enable_rls()


def downgrade() -> None:
    _disable_rls()
    with op.batch_alter_table('sla_breaches', schema=None) as batch_op:
        batch_op.drop_index('ix_sla_breaches_tenant_breached')
        batch_op.drop_index(batch_op.f('ix_sla_breaches_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_sla_breaches_run_id'))
    op.drop_table('sla_breaches')
    with op.batch_alter_table('escalation_pages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalation_pages_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_escalation_pages_run_id'))
        batch_op.drop_index(batch_op.f('ix_escalation_pages_escalation_id'))
    op.drop_table('escalation_pages')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_index('ix_escalations_tenant_status')
        batch_op.drop_index(batch_op.f('ix_escalations_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_escalations_run_id'))
    op.drop_table('escalations')
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_column('ref_id')
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.drop_column('acknowledged_by')
        batch_op.drop_column('acknowledged_at')
