"""From events to alerts and incidents, so an alarm flood does not drown the people on shift.

- **Dedup**: events with one dedup key (the sender's ``dedupkey``, else type + asset/site + alarm
  code) merge into one open alert that counts them; ``cleared`` resolves it, ``acknowledged``
  acknowledges it; a repeat after it was resolved opens a new alert.
- **Chattering**: more than ``CHATTER_LIMIT`` occurrences within ``CHATTER_WINDOW`` mark the alert
  chattering; it keeps counting and never notifies again.
- **Shelving**: a shelved key (a person put its alert on the shelf, with a reason and an expiry)
  counts repeats and opens alerts that notify nobody until the shelf expires.
- **Grouping**: a new alert whose event names an explicit parent (the ``incidentkey`` extension,
  e.g. a work order or a line stop the sender already tracks) joins the open incident of that key;
  otherwise it joins its asset's open incident when that opened within ``GROUP_WINDOW``; otherwise
  it opens one.
- **Flood**: when a site's alarm events in one minute reach ``FLOOD_LIMIT``, one flood incident
  opens for the site, the site's incidents of that minute fold into it, and new alerts join it
  without notifying anyone on their own.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.alerts.models import Alert, Incident, IncidentEntry
from andon.platform.alerts.repository import (
    AlarmRateRepository,
    AlertRepository,
    IncidentEntryRepository,
    IncidentRepository,
)
from andon.platform.db.scope import lock_name
from andon.platform.events.catalogue import CATALOGUE
from andon.platform.events.models import Event
from andon.platform.tenancy.context import TenantContext

CHATTER_LIMIT = 5
CHATTER_WINDOW = timedelta(seconds=60)
GROUP_WINDOW = timedelta(minutes=10)
FLOOD_LIMIT = 100  # alarm events per site per minute
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
# The extension attribute a sender names an explicit parent incident with.
PARENT_EXTENSION = "incidentkey"
PRIORITY = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4", "info": "P4"}


def dedup_key(event: Event) -> str:
    if event.dedup_key:
        return event.dedup_key
    code = event.data.get("code") if isinstance(event.data, dict) else None
    where = event.asset_ref or event.site_ref or event.source
    return ":".join(str(part) for part in (event.type, where, code) if part)


def _title(event: Event) -> str:
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    kind = CATALOGUE[event.type].title if event.type in CATALOGUE else event.type
    detail = data.get("message") or data.get("summary") or data.get("reason") or data.get("risk") or ""
    where = event.asset_ref or event.site_ref or event.subject or ""
    return " · ".join(part for part in (kind, where, str(detail)) if part)[:300]


def _max_severity(a: str, b: str) -> str:
    return a if SEVERITY_RANK.get(a, 2) >= SEVERITY_RANK.get(b, 2) else b


class Correlator:
    def __init__(self, session: AsyncSession, tenant: TenantContext) -> None:
        self.session = session
        self.tenant = tenant
        self.alerts = AlertRepository(session, tenant)
        self.incidents = IncidentRepository(session, tenant)
        self.entries = IncidentEntryRepository(session, tenant)
        self.rates = AlarmRateRepository(session, tenant)

    async def correlate(self, event: Event) -> Alert | None:
        kind = CATALOGUE.get(event.type)
        if not (kind and kind.alarm) and not event.dedup_key:
            return None  # a state change or a handover: stored and processed, nothing to alert on
        now = event.created_at
        site_key = str(event.site_id) if event.site_id else (event.site_ref or event.source)
        flood = await self._flood(site_key, event, now)
        key = dedup_key(event)
        await lock_name(self.session, f"alert:{self.tenant.tenant_id}:{key}")
        alert = await self.alerts.open_by_dedup(key)
        state = event.data.get("state") if isinstance(event.data, dict) else None
        if state == "cleared":
            if alert is not None:
                await self._settle(alert, "resolved", now, event.source)
            return alert
        if state == "acknowledged":
            if alert is not None and alert.status == "triggered":
                await self._settle(alert, "acknowledged", now, event.source)
            return alert
        if alert is not None:
            self._repeat(alert, event)
            return alert
        return await self._trigger(key, event, site_key, flood)

    def _repeat(self, alert: Alert, event: Event) -> None:
        now = event.created_at
        alert.count += 1
        alert.last_event_at = now
        alert.last_event_id = event.id
        alert.severity = _max_severity(alert.severity, event.severity or alert.severity)
        if now - alert.window_started_at > CHATTER_WINDOW:
            alert.window_started_at, alert.window_count = now, 1
        else:
            alert.window_count += 1
            if alert.window_count > CHATTER_LIMIT:
                alert.chattering = True

    async def _trigger(self, key: str, event: Event, site_key: str, flood: Incident | None) -> Alert:
        now = event.created_at
        severity = event.severity or "medium"
        shelf = await self.alerts.active_shelf(key, now)
        incident = flood or await self._incident_for(event, site_key, severity)
        alert = Alert(
            tenant_id=self.tenant.tenant_id,
            dedup_key=key,
            title=_title(event),
            type=event.type,
            source=event.source,
            severity=severity,
            site_id=event.site_id,
            asset_id=event.asset_id,
            incident_id=incident.id,
            count=1,
            first_event_at=now,
            last_event_at=now,
            last_event_id=event.id,
            window_started_at=now,
            window_count=1,
            # During a flood the flood incident speaks for every alert in it; a shelved key is held.
            notifications=0 if flood or shelf else 1,
            shelved_until=shelf.shelved_until if shelf else None,
            shelved_reason=shelf.shelved_reason if shelf else None,
        )
        await self.alerts.add(alert)
        incident.alert_count += 1
        incident.severity = _max_severity(incident.severity, severity)
        incident.priority = PRIORITY[incident.severity]
        await self._note(incident, now, "alert", f"Alert: {alert.title}", alert_id=alert.id)
        return alert

    async def _incident_for(self, event: Event, site_key: str, severity: str) -> Incident:
        now = event.created_at
        parent = event.extensions.get(PARENT_EXTENSION) if event.extensions else None
        group_key = str(parent)[:255] if parent else None
        if group_key is not None:
            await lock_name(self.session, f"incident:{self.tenant.tenant_id}:{group_key}")
            found = await self.incidents.open_for_group(group_key)
            if found is not None:
                return found
        elif event.asset_id is not None:
            found = await self.incidents.open_for_asset(event.asset_id, now - GROUP_WINDOW)
            if found is not None:
                return found
        incident = Incident(
            tenant_id=self.tenant.tenant_id,
            title=_title(event),
            kind="alert",
            severity=severity,
            priority=PRIORITY[severity],
            site_id=event.site_id,
            asset_id=event.asset_id,
            site_key=site_key,
            group_key=group_key,
            opened_at=now,
            notifications=0,
        )
        await self.incidents.add(incident)
        await self._note(incident, now, "opened", "Incident opened")
        return incident

    async def _flood(self, site_key: str, event: Event, now: Any) -> Incident | None:
        """Count the alarm; the site's open flood incident, opened now if the rate just crossed."""
        minute = int(now.timestamp() // 60)
        rate = await self.rates.bump(site_key, minute)
        await lock_name(self.session, f"flood:{self.tenant.tenant_id}:{site_key}")
        flood = await self.incidents.open_flood(site_key)
        if flood is not None:
            flood.event_count += 1
            return flood
        if rate < FLOOD_LIMIT:
            return None
        flood = Incident(
            tenant_id=self.tenant.tenant_id,
            title=f"Alarm flood at {event.site_ref or site_key}: {rate} alarms in a minute",
            kind="flood",
            severity="high",
            priority="P2",
            site_id=event.site_id,
            site_key=site_key,
            opened_at=now,
            event_count=rate,
            notifications=1,
        )
        await self.incidents.add(flood)
        await self._note(flood, now, "flood", f"{rate} alarms in a minute at this site (limit {FLOOD_LIMIT})")
        folded = await self.incidents.recent_alert_incidents(site_key, now - timedelta(minutes=1))
        if folded:
            await self.alerts.move([i.id for i in folded], flood.id)
            for incident in folded:
                incident.status, incident.merged_into = "merged", flood.id
                flood.alert_count += incident.alert_count
                await self._note(incident, now, "merged", "Merged into the alarm flood incident")
            await self._note(flood, now, "merged", f"{len(folded)} incident(s) of the last minute folded in")
        return flood

    async def _settle(self, alert: Alert, status: str, now: Any, by: str) -> None:
        alert.status = status
        if status == "resolved":
            alert.resolved_at, alert.resolved_by = now, by
        else:
            alert.acknowledged_at, alert.acknowledged_by = now, by
        if alert.incident_id is not None:
            incident = await self.incidents.get(alert.incident_id)
            if incident is not None:
                await self._note(incident, now, status, f"Alert {status} by {by}: {alert.title}", alert_id=alert.id)

    async def _note(self, incident: Incident, at: Any, kind: str, text: str, **extra: Any) -> None:
        await self.entries.add(
            IncidentEntry(
                tenant_id=self.tenant.tenant_id, incident_id=incident.id, at=at, kind=kind, text=text, **extra
            )
        )
