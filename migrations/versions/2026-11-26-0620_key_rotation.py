"""key rotation scope

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 06:20:00

``andon secrets rotate`` re-wraps every sealed secret under the newest key. It reads and rewrites the
tables that hold sealed values across all tenants, in a scope of its own (``andon.key_rotation``),
opened by an extra permissive policy on exactly those tables (policies combine with OR), so the
tenant rules themselves stay as they are.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROTATION = "coalesce(current_setting('andon.key_rotation', true), '') = 'on'"
# The tables with sealed columns (tests/platform/test_key_rotation.py checks this against the models).
TABLES = ("users", "identity_providers", "source_connections", "outbound_connections")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"CREATE POLICY {table}_key_rotation ON {table} USING ({_ROTATION}) WITH CHECK ({_ROTATION})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS {table}_key_rotation ON {table}")
