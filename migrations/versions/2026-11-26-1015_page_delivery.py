"""escalation pages: delivery through the ladder's notify channels

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-26 10:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("escalation_pages") as batch:
        batch.add_column(sa.Column("delivery_detail", _JSON, nullable=True))
        batch.add_column(sa.Column("delivery_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("delivery_lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("entry_id", sa.Uuid(), nullable=True))
    # Nothing delivered pages before, and no ladder named a channel: they were only ever recorded.
    op.execute("UPDATE escalation_pages SET delivery = 'none' WHERE delivery = 'pending'")


def downgrade() -> None:
    op.execute("UPDATE escalation_pages SET delivery = 'pending' WHERE delivery = 'none'")
    with op.batch_alter_table("escalation_pages") as batch:
        batch.drop_column("entry_id")
        batch.drop_column("delivery_lease_until")
        batch.drop_column("delivery_attempts")
        batch.drop_column("delivery_detail")
