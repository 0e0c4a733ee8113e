"""connection kinds: MQTT, pollers, mappings; raw payload retention; explicit parent incidents

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Row-level security (PostgreSQL only): the retention sweeps clear expired raw payloads and delivery
# log lines of every tenant in a maintenance mode of their own; they can touch nothing else.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_MAINTENANCE = "coalesce(current_setting('andon.maintenance', true), '') = 'on'"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def _events_policy(rule: str) -> None:
    """The sweeps' tables: events (raw payloads) and the delivery log."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("events", "webhook_deliveries"):
        op.execute(f"DROP POLICY IF EXISTS {table}_scope ON {table}")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({rule}) WITH CHECK ({rule})")


def upgrade() -> None:
    with op.batch_alter_table('source_connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('config', _JSON, nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('mapping', _JSON, nullable=True))
        batch_op.add_column(sa.Column('cursor', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=500), nullable=True))
        batch_op.alter_column('secret_sealed', existing_type=sa.Text(), nullable=True)
        batch_op.create_index('ix_source_connections_kind_next_poll', ['kind', 'next_poll_at'], unique=False)
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('raw', existing_type=sa.LargeBinary(), nullable=True)
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_key', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_incidents_tenant_group', ['tenant_id', 'group_key'], unique=False)
    _events_policy(f"{_MAINTENANCE} OR {_IN_TENANT}")


def downgrade() -> None:
    _events_policy(_IN_TENANT)
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_tenant_group')
        batch_op.drop_column('group_key')
    op.execute("UPDATE events SET raw = '' WHERE raw IS NULL" if op.get_bind().dialect.name != "postgresql"
               else "UPDATE events SET raw = ''::bytea WHERE raw IS NULL")
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('raw', existing_type=sa.LargeBinary(), nullable=False)
    op.execute("DELETE FROM source_connections WHERE secret_sealed IS NULL")
    with op.batch_alter_table('source_connections', schema=None) as batch_op:
        batch_op.drop_index('ix_source_connections_kind_next_poll')
        batch_op.alter_column('secret_sealed', existing_type=sa.Text(), nullable=False)
        batch_op.drop_column('last_error')
        batch_op.drop_column('next_poll_at')
        batch_op.drop_column('cursor')
        batch_op.drop_column('mapping')
        batch_op.drop_column('config')
