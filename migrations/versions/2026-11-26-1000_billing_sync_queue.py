"""billing sync queue, and usage read policies evaluated once per statement

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-26 10:00:00

``billing_sync_queue``: a customer whose subscription changed and whose Stripe objects are still to
be brought up to date. The row is written in the change's own transaction, so the change is never
lost; the sync deletes it once Stripe has the change, and a failed call leaves it for the next try.

The read policies of ``usage_records`` say the same as before, but each setting is read once per
statement (a scalar subquery: an InitPlan) instead of once per row, the cheap alternatives come first,
and the tenant's partner is checked on the record's own ``partner_id`` rather than by a per-row
customer lookup. A period close reads millions of rows through this policy: evaluated per row it cost
more than the aggregation, and its estimated cost steered the planner to whole-table index scans.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_OPERATOR = "coalesce(current_setting('andon.operator', true), '') = 'on'"
_METERING = "coalesce(current_setting('andon.metering', true), '') = 'on'"
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
_OLD_READ = f"{_IN_TENANT} OR (partner_id = {_PARTNER} AND {_TENANT} IS NULL) OR {_OPERATOR}"

_ONCE_TENANT = f"(SELECT {_TENANT})"
_ONCE_PARTNER = f"(SELECT {_PARTNER})"
# A usage record carries its customer's partner (the partner-wide branch already reads by it), so the
# in-tenant branch compares that column too instead of looking the customer up row by row: a per-row
# subquery also made the planner misjudge every read and scan the whole table in index order.
_ONCE_IN_TENANT = f"(tenant_id = {_ONCE_TENANT} AND ({_ONCE_PARTNER} IS NULL OR partner_id = {_ONCE_PARTNER}))"
_NEW_READ = f"(SELECT {_OPERATOR}) OR (partner_id = {_ONCE_PARTNER} AND {_ONCE_TENANT} IS NULL) OR {_ONCE_IN_TENANT}"


def upgrade() -> None:
    op.create_table(
        "billing_sync_queue",
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["customers.id"], name=op.f("fk_billing_sync_queue_tenant_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_sync_queue")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_billing_sync_queue_tenant_id")),
    )
    op.create_index(op.f("ix_billing_sync_queue_tenant_id"), "billing_sync_queue", ["tenant_id"], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    # Written inside the tenant (the subscription change); read and cleared by the sync, which works
    # as the operator bound to each tenant in turn.
    op.execute("ALTER TABLE billing_sync_queue ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE billing_sync_queue FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY billing_sync_queue_read ON billing_sync_queue FOR SELECT USING ({_IN_TENANT} OR {_OPERATOR})"
    )
    op.execute(f"CREATE POLICY billing_sync_queue_insert ON billing_sync_queue FOR INSERT WITH CHECK ({_IN_TENANT})")
    op.execute(
        f"CREATE POLICY billing_sync_queue_update ON billing_sync_queue FOR UPDATE "
        f"USING ({_IN_TENANT}) WITH CHECK ({_IN_TENANT})"
    )
    op.execute(f"CREATE POLICY billing_sync_queue_delete ON billing_sync_queue FOR DELETE USING ({_IN_TENANT})")

    op.execute("DROP POLICY usage_records_read ON usage_records")
    op.execute(f"CREATE POLICY usage_records_read ON usage_records FOR SELECT USING ({_NEW_READ})")
    op.execute("DROP POLICY usage_records_metering_read ON usage_records")
    op.execute(f"CREATE POLICY usage_records_metering_read ON usage_records FOR SELECT USING ((SELECT {_METERING}))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY usage_records_metering_read ON usage_records")
        op.execute(f"CREATE POLICY usage_records_metering_read ON usage_records FOR SELECT USING ({_METERING})")
        op.execute("DROP POLICY usage_records_read ON usage_records")
        op.execute(f"CREATE POLICY usage_records_read ON usage_records FOR SELECT USING ({_OLD_READ})")
    op.drop_index(op.f("ix_billing_sync_queue_tenant_id"), table_name="billing_sync_queue")
    op.drop_table("billing_sync_queue")
