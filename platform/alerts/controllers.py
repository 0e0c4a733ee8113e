"""Alerts and incidents of one customer. The app factory mounts these with the ``tenant`` dependency
of the tenants domain, so the kernel never reaches into that domain for it."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromQuery, JSONBody

from andon.platform.alerts.repository import AlertRepository, IncidentRepository
from andon.platform.alerts.schemas import AlertRead, IncidentDetail, IncidentRead, Shelve, TimelineEntry
from andon.platform.alerts.service import AlertService
from andon.platform.api.schemas import Page, to_read
from andon.platform.auth.rbac import P
from andon.platform.http.params import DbSession, Limit, Offset, OptionalId, PathId, Tenant


class AlertController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/alerts"
    tags = ["Alerts and incidents"]

    @get("/", opt={"permission": P.EVENTS_READ})
    async def list_alerts(
        self,
        db_session: DbSession,
        tenant: Tenant,
        limit: Limit = 50,
        offset: Offset = 0,
        status: FromQuery[str | None] = None,
        incident_id: OptionalId = None,
    ) -> Page[AlertRead]:
        rows, total = await AlertRepository(db_session, tenant).search(
            limit=limit, offset=offset, status=status, incident_id=incident_id
        )
        return Page(items=[to_read(r, AlertRead) for r in rows], total=total, limit=limit, offset=offset)

    @get("/{alert_id:uuid}", opt={"permission": P.EVENTS_READ})
    async def get_alert(self, db_session: DbSession, tenant: Tenant, alert_id: PathId) -> AlertRead:
        return to_read(await AlertService(db_session, tenant).get(alert_id), AlertRead)

    @post("/{alert_id:uuid}/acknowledge", opt={"permission": P.ALERTS_WRITE}, status_code=200)
    async def acknowledge(self, db_session: DbSession, tenant: Tenant, alert_id: PathId) -> AlertRead:
        return to_read(await AlertService(db_session, tenant).acknowledge(alert_id), AlertRead)

    @post("/{alert_id:uuid}/resolve", opt={"permission": P.ALERTS_WRITE}, status_code=200)
    async def resolve(self, db_session: DbSession, tenant: Tenant, alert_id: PathId) -> AlertRead:
        return to_read(await AlertService(db_session, tenant).resolve(alert_id), AlertRead)

    @post(
        "/{alert_id:uuid}/shelve",
        opt={"permission": P.ALERTS_WRITE},
        status_code=200,
        description="Hold the alert's key: repeats are counted, nobody is told, until the shelf expires.",
    )
    async def shelve(
        self, db_session: DbSession, tenant: Tenant, alert_id: PathId, data: JSONBody[Shelve]
    ) -> AlertRead:
        return to_read(await AlertService(db_session, tenant).shelve(alert_id, data), AlertRead)

    @post("/{alert_id:uuid}/unshelve", opt={"permission": P.ALERTS_WRITE}, status_code=200)
    async def unshelve(self, db_session: DbSession, tenant: Tenant, alert_id: PathId) -> AlertRead:
        return to_read(await AlertService(db_session, tenant).unshelve(alert_id), AlertRead)


class IncidentController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/incidents"
    tags = ["Alerts and incidents"]

    @get("/", opt={"permission": P.EVENTS_READ})
    async def list_incidents(
        self,
        db_session: DbSession,
        tenant: Tenant,
        limit: Limit = 50,
        offset: Offset = 0,
        status: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
    ) -> Page[IncidentRead]:
        rows, total = await IncidentRepository(db_session, tenant).search(
            limit=limit, offset=offset, status=status, kind=kind
        )
        return Page(items=[to_read(r, IncidentRead) for r in rows], total=total, limit=limit, offset=offset)

    @get(
        "/{incident_id:uuid}", opt={"permission": P.EVENTS_READ}, description="The incident, its alerts, its timeline."
    )
    async def get_incident(self, db_session: DbSession, tenant: Tenant, incident_id: PathId) -> IncidentDetail:
        incident, alerts, timeline = await AlertService(db_session, tenant).incident(incident_id)
        return IncidentDetail(
            incident=to_read(incident, IncidentRead),
            alerts=[to_read(a, AlertRead) for a in alerts],
            timeline=[to_read(e, TimelineEntry) for e in timeline],
        )
