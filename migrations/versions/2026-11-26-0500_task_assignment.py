"""task assignment: a human task's assignee, who assigned it and when, and who handed it on

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 04:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Columns only: human_tasks already lives inside its tenant (row-level security since 0009). Every new
# column is nullable, so existing tasks stay unassigned (anyone holding the role) without a backfill.


def upgrade() -> None:
    with op.batch_alter_table("human_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("assigned_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("delegated_from", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("human_tasks", schema=None) as batch_op:
        batch_op.drop_column("delegated_from")
        batch_op.drop_column("assigned_at")
        batch_op.drop_column("assigned_by")
        batch_op.drop_column("assignee")
