"""deployments: sites that run with values of their own

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-26 09:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("site_variants", _JSON, nullable=False, server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("previous_site_variants", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("previous_site_variants")
        batch.drop_column("site_variants")
