"""What a worker does with an accepted event: claim it once (the broker delivers at least once),
correlate it into alerts and incidents, start the workflows it triggers and wake the steps waiting
for it, all in one transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.alerts.correlation import Correlator
from andon.platform.db.scope import bind_tenant
from andon.platform.db.types import utcnow
from andon.platform.engine.executor import StepMessage
from andon.platform.engine.runs import deliver_event_to_waits, start_runs_for_event
from andon.platform.events.repository import EventRepository
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import system_principal

WORKER = system_principal(frozenset(), label="event worker")


async def process_event(
    session: AsyncSession, tenant_id: uuid.UUID, partner_id: uuid.UUID, event_id: uuid.UUID
) -> list[StepMessage] | None:
    """The step messages to send once the transaction commits (runs started, waits woken); None when
    an earlier delivery already processed the event."""
    tenant = TenantContext(tenant_id=TenantId(tenant_id), partner_id=partner_id, principal=WORKER)
    await bind_tenant(session, tenant.tenant_id, WORKER)
    now = utcnow()
    event = await EventRepository(session, tenant).claim_for_processing(event_id, now)
    if event is None:
        return None
    alert = await Correlator(session, tenant).correlate(event)
    messages = await start_runs_for_event(session, tenant, event, alert, now)
    return messages + await deliver_event_to_waits(session, tenant, event, now)
