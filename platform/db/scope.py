"""Row-level security scope for the current transaction (PostgreSQL).

The policies in ``db/rls.py`` read these settings. They are set with ``set_config(..., true)``, the
function form of ``SET LOCAL``, so they vanish at commit or rollback and can never leak from one
pooled connection's request into the next. On SQLite these are no-ops: repositories are the only
isolation there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.tenancy.principal import Principal

TENANT_SETTING = "andon.tenant_id"
PARTNER_SETTING = "andon.partner_id"
OPERATOR_SETTING = "andon.operator"
AUTH_LOOKUP_SETTING = "andon.auth_lookup"
RELAY_SETTING = "andon.relay"
MAINTENANCE_SETTING = "andon.maintenance"
SCHEDULER_SETTING = "andon.scheduler"
KEY_ROTATION_SETTING = "andon.key_rotation"
METERING_SETTING = "andon.metering"


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_SET_CONFIG = text("SELECT set_config(:name, :value, true)")


async def _set(session: AsyncSession, name: str, value: str) -> None:
    # Built once: every step's transactions begin here, and a new text() is compiled and keyed anew.
    await session.execute(_SET_CONFIG, {"name": name, "value": value})


# One round trip for the whole scope (every request begins with it).
_SCOPE = f"SELECT set_config('{PARTNER_SETTING}', :partner, true), set_config('{OPERATOR_SETTING}', :operator, true)"
_SCOPE_WITH_TENANT = text(f"{_SCOPE}, set_config('{TENANT_SETTING}', :tenant, true)")
_SCOPE_ONLY = text(_SCOPE)


async def apply_principal_scope(session: AsyncSession, principal: Principal) -> None:
    if not is_postgres(session):
        return
    values = {
        "partner": str(principal.partner_id) if principal.partner_id else "",
        "operator": "on" if principal.is_operator else "",
    }
    if principal.customer_id:
        await session.execute(_SCOPE_WITH_TENANT, {**values, "tenant": str(principal.customer_id)})
    else:
        await session.execute(_SCOPE_ONLY, values)


async def bind_tenant(session: AsyncSession, tenant_id: uuid.UUID, principal: Principal) -> None:
    if principal.customer_id is not None and principal.customer_id != tenant_id:
        # A customer's own scope was fixed when the transaction began; nothing may move it.
        raise PermissionError("a customer principal cannot be bound to another tenant")
    if is_postgres(session):
        await _set(session, TENANT_SETTING, str(tenant_id))


async def unbind_tenant(session: AsyncSession) -> None:
    """Leaves the tenant a partner's bulk operation was working in (the next customer is bound in turn,
    and the partner's own rows are written outside any tenant)."""
    if is_postgres(session):
        await _set(session, TENANT_SETTING, "")


async def allow_auth_lookup(session: AsyncSession) -> None:
    """Lets the authentication middleware find a key by its prefix before any tenant is known."""
    if is_postgres(session):
        await _set(session, AUTH_LOOKUP_SETTING, "on")


async def enter_relay_mode(session: AsyncSession) -> None:
    """The outbox relay reads every tenant's pending messages (and nothing else) for this transaction."""
    if is_postgres(session):
        await _set(session, RELAY_SETTING, "on")


async def enter_maintenance_mode(session: AsyncSession) -> None:
    """Housekeeping across tenants (the raw-payload retention sweep) for this transaction; the
    policies open to it only what the sweep touches."""
    if is_postgres(session):
        await _set(session, MAINTENANCE_SETTING, "on")


async def enter_scheduler_mode(session: AsyncSession) -> None:
    """A scheduler fires every tenant's due timers and requeues stalled steps in this transaction;
    the policies open the timers and step runs to it, nothing else."""
    if is_postgres(session):
        await _set(session, SCHEDULER_SETTING, "on")


async def enter_key_rotation_mode(session: AsyncSession) -> None:
    """``andon secrets rotate`` reads and rewrites the sealed secrets of every tenant in this
    transaction; the policies open only the tables that hold them."""
    if is_postgres(session):
        await _set(session, KEY_ROTATION_SETTING, "on")


async def enter_metering_mode(session: AsyncSession) -> None:
    """The usage collector reads what every tenant did (events, runs, steps, connector calls, assets,
    seats) and appends usage records in this transaction; the policies open those reads and that
    insert, nothing else."""
    if is_postgres(session):
        await _set(session, METERING_SETTING, "on")


async def lock_name(session: AsyncSession, name: str) -> None:
    """A lock on a name until the transaction ends, so two workers never correlate the same alert at
    once. On SQLite a write transaction already excludes every other writer (``BEGIN IMMEDIATE``)."""
    if is_postgres(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name})


@asynccontextmanager
async def lookup_window(session: AsyncSession) -> AsyncIterator[None]:
    """Authentication-lookup visibility for a few reads inside an otherwise scoped transaction (a
    uniqueness check across organisations), confined to a savepoint that is rolled back, which also
    rolls back the setting: the rest of the transaction keeps its narrow scope."""
    savepoint = await session.begin_nested()
    try:
        await allow_auth_lookup(session)
        yield
    finally:
        await savepoint.rollback()


async def discard_changes(session: AsyncSession, principal: Principal) -> None:
    """Roll back what the request did so far and carry on in a fresh transaction with the same scope
    (a page that shows a refusal after a failed all-or-nothing operation)."""
    await session.rollback()
    await apply_principal_scope(session, principal)
