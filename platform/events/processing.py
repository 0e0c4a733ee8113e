"""What a worker does with an accepted event: claim it once (the broker delivers at least once), then
correlate it into alerts and incidents, in the same transaction; workflow triggers hang off here."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.alerts.correlation import Correlator
from andon.platform.db.scope import bind_tenant
from andon.platform.db.types import utcnow
from andon.platform.events.repository import EventRepository
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import system_principal

WORKER = system_principal(frozenset(), label="event worker")


async def process_event(
    session: AsyncSession, tenant_id: uuid.UUID, partner_id: uuid.UUID, event_id: uuid.UUID
) -> bool:
    """True when this call processed the event, False when an earlier delivery already had."""
    tenant = TenantContext(tenant_id=TenantId(tenant_id), partner_id=partner_id, principal=WORKER)
    await bind_tenant(session, tenant.tenant_id, WORKER)
    event = await EventRepository(session, tenant).claim_for_processing(event_id, utcnow())
    if event is None:
        return False
    await Correlator(session, tenant).correlate(event)
    return True
