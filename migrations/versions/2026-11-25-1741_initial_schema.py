"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 17:41:31.656586
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Row-level security (PostgreSQL only). The application sets these per transaction with
# set_config(..., true); see andon/platform/db/scope.py. Frozen here as SQL so later code changes
# cannot silently alter what this revision created.
_TENANT = "nullif(current_setting('andon.tenant_id', true), '')::uuid"
_PARTNER = "nullif(current_setting('andon.partner_id', true), '')::uuid"
_OPERATOR = "coalesce(current_setting('andon.operator', true), '') = 'on'"
_AUTH = "coalesce(current_setting('andon.auth_lookup', true), '') = 'on'"
# A row of the bound tenant, and, when a partner is acting, only if that tenant is its customer: a
# wrong tenant binding in a partner's request still finds nothing.
_IN_TENANT = (
    f"(tenant_id = {_TENANT} AND ({_PARTNER} IS NULL OR EXISTS "
    f"(SELECT 1 FROM customers c WHERE c.id = tenant_id AND c.partner_id = {_PARTNER})))"
)
# The operator keeps the platform chain and writes on partner chains (it creates their customers);
# tenant chains are readable only inside the tenant.
_CHAIN = f"{_IN_TENANT} OR (tenant_id IS NULL AND (partner_id = {_PARTNER} OR {_OPERATOR}))"
POLICIES = {
    # A customer reads its own partner (whose brand and status it lives under).
    "partners": f"{_OPERATOR} OR id = {_PARTNER} OR id IN (SELECT c.partner_id FROM customers c WHERE c.id = {_TENANT})",
    "customers": f"{_OPERATOR} OR partner_id = {_PARTNER} OR id = {_TENANT}",
    "sites": _IN_TENANT,
    "areas": _IN_TENANT,
    "lines": _IN_TENANT,
    "assets": _IN_TENANT,
    "shift_calendars": _IN_TENANT,
    "api_keys": (
        f"{_AUTH} OR (org_kind IN ('platform', 'partner') AND {_OPERATOR})"
        f" OR (org_kind = 'partner' AND partner_id = {_PARTNER}) OR {_IN_TENANT}"
    ),
    "audit_entries": _CHAIN,
    "audit_chain_heads": _CHAIN,
}


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
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def upgrade() -> None:
    op.create_table('audit_chain_heads',
    sa.Column('chain', sa.String(length=80), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=True),
    sa.Column('partner_id', sa.Uuid(), nullable=True),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('chain', name=op.f('pk_audit_chain_heads'))
    )
    with op.batch_alter_table('audit_chain_heads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_chain_heads_partner_id'), ['partner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_chain_heads_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('audit_entries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('chain', sa.String(length=80), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=True),
    sa.Column('partner_id', sa.Uuid(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('target_type', sa.String(length=60), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=True),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entries')),
    sa.UniqueConstraint('chain', 'seq', name=op.f('uq_audit_entries_chain_seq'))
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entries_partner_id'), ['partner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('partners',
    sa.Column('slug', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partners')),
    sa.UniqueConstraint('slug', name=op.f('uq_partners_slug'))
    )
    op.create_table('customers',
    sa.Column('partner_id', sa.Uuid(), nullable=False),
    sa.Column('slug', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('default_timezone', sa.String(length=64), nullable=False),
    sa.Column('partner_access', sa.Boolean(), nullable=False),
    sa.Column('partner_access_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_customers_partner_id_partners'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('slug', name=op.f('uq_customers_slug'))
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customers_partner_id'), ['partner_id'], unique=False)

    op.create_table('api_keys',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('org_kind', sa.String(length=20), nullable=False),
    sa.Column('partner_id', sa.Uuid(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=True),
    sa.Column('roles', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_api_keys_partner_id_partners'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_api_keys_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_partner_id'), ['partner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_api_keys_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('sites',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_sites_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sites')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_sites_tenant_id_external_id'))
    )
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sites_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('areas',
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_areas_site_id_sites')),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_areas_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_areas')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_areas_tenant_id_external_id'))
    )
    with op.batch_alter_table('areas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_areas_site_id'), ['site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_areas_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('shift_calendars',
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('shifts', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_shift_calendars_site_id_sites')),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_shift_calendars_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shift_calendars')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_shift_calendars_tenant_id_external_id')),
    sa.UniqueConstraint('tenant_id', 'site_id', 'name', name=op.f('uq_shift_calendars_tenant_id_site_id_name'))
    )
    with op.batch_alter_table('shift_calendars', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shift_calendars_site_id'), ['site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shift_calendars_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('lines',
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.Column('area_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_lines_area_id_areas')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_lines_site_id_sites')),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_lines_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lines')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_lines_tenant_id_external_id'))
    )
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lines_area_id'), ['area_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lines_site_id'), ['site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lines_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('assets',
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.Column('line_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('asset_type', sa.String(length=100), nullable=True),
    sa.Column('manufacturer', sa.String(length=100), nullable=True),
    sa.Column('model', sa.String(length=100), nullable=True),
    sa.Column('serial_number', sa.String(length=100), nullable=True),
    sa.Column('criticality', sa.String(length=1), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['line_id'], ['lines.id'], name=op.f('fk_assets_line_id_lines')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_assets_site_id_sites')),
    sa.ForeignKeyConstraint(['tenant_id'], ['customers.id'], name=op.f('fk_assets_tenant_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assets')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_assets_tenant_id_external_id'))
    )
    with op.batch_alter_table('assets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assets_line_id'), ['line_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assets_site_id'), ['site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assets_tenant_id'), ['tenant_id'], unique=False)
    _enable_rls()


def downgrade() -> None:
    _disable_rls()
    with op.batch_alter_table('assets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assets_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_assets_site_id'))
        batch_op.drop_index(batch_op.f('ix_assets_line_id'))

    op.drop_table('assets')
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lines_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_lines_site_id'))
        batch_op.drop_index(batch_op.f('ix_lines_area_id'))

    op.drop_table('lines')
    with op.batch_alter_table('shift_calendars', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shift_calendars_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_shift_calendars_site_id'))

    op.drop_table('shift_calendars')
    with op.batch_alter_table('areas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_areas_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_areas_site_id'))

    op.drop_table('areas')
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sites_tenant_id'))

    op.drop_table('sites')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_api_keys_partner_id'))

    op.drop_table('api_keys')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customers_partner_id'))

    op.drop_table('customers')
    op.drop_table('partners')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entries_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_audit_entries_partner_id'))

    op.drop_table('audit_entries')
    with op.batch_alter_table('audit_chain_heads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_chain_heads_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_audit_chain_heads_partner_id'))

    op.drop_table('audit_chain_heads')
