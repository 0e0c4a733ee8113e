"""Alerts the platform raises itself (not from an event): a workflow step that ran out of retries.
It joins the run's incident, so the people on it see the failure on the same timeline."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.alerts.models import Alert, IncidentEntry
from andon.platform.alerts.repository import AlertRepository, IncidentEntryRepository
from andon.platform.tenancy.context import TenantContext

STEP_FAILED = "dev.andon.workflow.step_failed"


async def raise_step_alert(
    session: AsyncSession,
    tenant: TenantContext,
    *,
    run_id: uuid.UUID,
    step_key: str,
    title: str,
    site_id: uuid.UUID | None,
    incident_id: uuid.UUID | None,
    now: datetime,
) -> Alert:
    alert = await AlertRepository(session, tenant).add(
        Alert(
            dedup_key=f"run:{run_id}:{step_key}",
            title=title[:300],
            type=STEP_FAILED,
            source=f"urn:andon:run:{run_id}",
            severity="high",
            site_id=site_id,
            incident_id=incident_id,
            count=1,
            first_event_at=now,
            last_event_at=now,
            last_event_id=run_id,
            window_started_at=now,
            window_count=1,
            notifications=1,
        )
    )
    if incident_id is not None:
        await IncidentEntryRepository(session, tenant).add(
            IncidentEntry(
                incident_id=incident_id, at=now, kind="alert", text=f"Alert: {alert.title}", alert_id=alert.id
            )
        )
    return alert
