"""What people do to alerts: acknowledge, resolve, shelve (with a reason and an expiry), unshelve.
Every such act is audited and noted on the incident's timeline. Acknowledging an alert (or, with its
last alert, the incident) stops the escalation ladders of the runs it started, in the same
transaction."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.alerts.models import Alert, Incident, IncidentEntry
from andon.platform.alerts.repository import AlertRepository, IncidentEntryRepository, IncidentRepository
from andon.platform.alerts.schemas import Shelve
from andon.platform.audit.service import record
from andon.platform.db.types import utcnow
from andon.platform.engine.escalation import acknowledged_elsewhere
from andon.platform.http.errors import ConflictError, NotFoundError
from andon.platform.tenancy.context import TenantContext


class AlertService:
    def __init__(self, session: AsyncSession, tenant: TenantContext) -> None:
        self.session = session
        self.tenant = tenant
        self.alerts = AlertRepository(session, tenant)
        self.incidents = IncidentRepository(session, tenant)
        self.entries = IncidentEntryRepository(session, tenant)

    async def get(self, alert_id: uuid.UUID) -> Alert:
        alert = await self.alerts.get(alert_id)
        if alert is None:
            raise NotFoundError("alert not found")
        return alert

    async def incident(self, incident_id: uuid.UUID) -> tuple[Incident, list[Alert], list[IncidentEntry]]:
        incident = await self.incidents.get(incident_id)
        if incident is None:
            raise NotFoundError("incident not found")
        alerts, _ = await self.alerts.search(limit=500, offset=0, incident_id=incident.id)
        return incident, list(alerts), list(await self.entries.timeline(incident.id))

    async def acknowledge(self, alert_id: uuid.UUID) -> Alert:
        alert = await self.get(alert_id)
        if alert.status != "triggered":
            raise ConflictError(f"the alert is {alert.status}; only a triggered alert can be acknowledged")
        now = utcnow()
        alert.status, alert.acknowledged_at, alert.acknowledged_by = "acknowledged", now, self._who()
        await self._act(alert, "alert.acknowledged", f"Acknowledged by {self._who()}")
        # Someone owns it: the escalation ladders of the runs it started stop now, not at their next page.
        await acknowledged_elsewhere(
            self.session, self.tenant, f"alert acknowledged by {self._who()}", now, alert_id=alert.id
        )
        if alert.incident_id is not None:
            await self._acknowledge_incident_when_owned(alert.incident_id)
        return alert

    async def resolve(self, alert_id: uuid.UUID) -> Alert:
        alert = await self.get(alert_id)
        if alert.status == "resolved":
            raise ConflictError("the alert is already resolved")
        alert.status, alert.resolved_at, alert.resolved_by = "resolved", utcnow(), self._who()
        await self._act(alert, "alert.resolved", f"Resolved by {self._who()}")
        if alert.incident_id is not None:
            await self._close_incident_when_done(alert.incident_id)
        return alert

    async def shelve(self, alert_id: uuid.UUID, data: Shelve) -> Alert:
        alert = await self.get(alert_id)
        alert.shelved_until = utcnow() + timedelta(minutes=data.minutes)
        alert.shelved_reason = data.reason
        await self._act(
            alert,
            "alert.shelved",
            f"Shelved by {self._who()} for {data.minutes} min: {data.reason}",
            after={"shelved_until": alert.shelved_until.isoformat(), "reason": data.reason},
        )
        return alert

    async def unshelve(self, alert_id: uuid.UUID) -> Alert:
        alert = await self.get(alert_id)
        alert.shelved_until, alert.shelved_reason = None, None
        await self._act(alert, "alert.unshelved", f"Taken off the shelf by {self._who()}")
        return alert

    async def _acknowledge_incident_when_owned(self, incident_id: uuid.UUID) -> None:
        """An incident is acknowledged once no alert of it is left unacknowledged: someone owns it."""
        incident = await self.incidents.get(incident_id)
        if incident is None or incident.status != "open":
            return
        triggered, _ = await self.alerts.search(limit=1, offset=0, incident_id=incident_id, status="triggered")
        if not triggered:
            now = utcnow()
            incident.status, incident.acknowledged_at = "acknowledged", now
            await self._note(incident.id, "acknowledged", f"Every alert is acknowledged: {self._who()} owns it", None)
            await acknowledged_elsewhere(
                self.session, self.tenant, "incident acknowledged", now, incident_id=incident.id
            )

    async def _close_incident_when_done(self, incident_id: uuid.UUID) -> None:
        incident = await self.incidents.get(incident_id)
        if incident is None or incident.status not in ("open", "acknowledged"):
            return
        alerts, _ = await self.alerts.search(limit=1, offset=0, incident_id=incident_id, status="triggered")
        acked, _ = await self.alerts.search(limit=1, offset=0, incident_id=incident_id, status="acknowledged")
        if not alerts and not acked:
            incident.status, incident.resolved_at = "resolved", utcnow()
            await self._note(incident.id, "resolved", "Every alert is resolved: incident resolved", None)

    def _who(self) -> str:
        return self.tenant.principal.label

    async def _act(self, alert: Alert, action: str, text: str, after: dict[str, object] | None = None) -> None:
        await self.session.flush()
        await record(
            self.session,
            self.tenant.principal,
            action,
            target_type="alert",
            target_id=alert.id,
            after=after or {"status": alert.status},
            tenant=self.tenant,
        )
        if alert.incident_id is not None:
            await self._note(alert.incident_id, action.split(".")[1], f"{text}: {alert.title}", alert.id)

    async def _note(self, incident_id: uuid.UUID, kind: str, text: str, alert_id: uuid.UUID | None) -> None:
        entry = IncidentEntry(incident_id=incident_id, at=utcnow(), kind=kind, text=text, actor=self._who())
        entry.alert_id = alert_id
        await self.entries.add(entry)
