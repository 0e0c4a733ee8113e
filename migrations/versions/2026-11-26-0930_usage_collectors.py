"""usage collectors' watermarks

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-26 09:30:00

The usage collector meters every tenant's events, runs, finished steps and connector calls in one
pass, in a metering mode of its own (``andon.metering``) that opens those reads, the customers'
asset and seat counts, and the insert of usage records; nothing else. The sources get an index in
the order the collector reads them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METERING = "coalesce(current_setting('andon.metering', true), '') = 'on'"
_READS = ("events", "workflow_runs", "step_runs", "connector_calls", "customers", "assets", "users", "usage_records")
_INDEXES = (
    ("ix_events_created_id", "events", "created_at"),
    ("ix_workflow_runs_created_id", "workflow_runs", "created_at"),
    ("ix_step_runs_finished_id", "step_runs", "finished_at"),
    ("ix_connector_calls_created_id", "connector_calls", "created_at"),
)


def upgrade() -> None:
    op.create_table(
        "usage_marks",
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_usage_marks")),
    )
    for name, table, column in _INDEXES:
        op.create_index(name, table, [column, "id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE usage_marks ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE usage_marks FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY usage_marks_metering ON usage_marks USING ({_METERING}) WITH CHECK ({_METERING})")
    for table in _READS:
        op.execute(f"CREATE POLICY {table}_metering_read ON {table} FOR SELECT USING ({_METERING})")
    op.execute(f"CREATE POLICY usage_records_metering_insert ON usage_records FOR INSERT WITH CHECK ({_METERING})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS usage_records_metering_insert ON usage_records")
        for table in _READS:
            op.execute(f"DROP POLICY IF EXISTS {table}_metering_read ON {table}")
    for name, table, _column in _INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_table("usage_marks")
