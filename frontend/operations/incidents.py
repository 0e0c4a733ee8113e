"""Incidents and alerts as the people on shift work them: lists with filters, an incident's page with its
timeline and alerts, and the acts of ``alerts:write`` (acknowledge, resolve, shelve with a reason and an
expiry, unshelve) done by the alerts service, which audits each and notes it on the timeline.

Lists have no read service: like the API's list routes, they read through the tenant-scoped
repositories (which narrow to a site-level grant's sites); everything else goes through ``AlertService``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Redirect, Response, Template

from andon.frontend.customer.console import PAGE_SIZE, first_row, form_page, pager, refused, service_refused
from andon.frontend.flash import redirect_with_notice
from andon.frontend.operations.console import (
    SEVERITIES,
    OperationsConsoleController,
    attempt,
    chosen,
    options,
    plant_name,
    site_filter,
    sites_of,
)
from andon.frontend.pages import Form, page
from andon.platform.alerts.models import Alert
from andon.platform.alerts.repository import AlertRepository, IncidentRepository
from andon.platform.alerts.schemas import Shelve
from andon.platform.alerts.service import AlertService
from andon.platform.auth.rbac import P
from andon.platform.http.errors import AndonError, ConflictError
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal
from andon.tenants.plant.service import PlantService

INCIDENTS_PATH = "/operations/incidents"
ALERTS_PATH = "/operations/alerts"
INCIDENT_STATES = ("open", "acknowledged", "resolved", "merged")
ALERT_STATES = ("triggered", "acknowledged", "resolved")
SHELF_STATES = ("yes", "no")
# How long a shelf holds, as the chooser offers it (the service allows 1 minute to a week).
SHELF_MINUTES = (
    (15, "15 minutes"),
    (60, "1 hour"),
    (240, "4 hours"),
    (480, "8 hours (a shift)"),
    (1440, "1 day"),
    (10080, "1 week"),
)
ENTRY_KINDS = {
    "opened": "Opened",
    "alert": "Alert joined",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "shelved": "Shelved",
    "unshelved": "Unshelved",
    "flood": "Alarm flood",
    "merged": "Merged",
}
# Where an alert's buttons send the browser back to: its incident's page or its own, nothing else.
_BACK = re.compile(rf"^(?:{INCIDENTS_PATH}|{ALERTS_PATH})/[0-9a-f-]{{36}}$")
ALERT_PAGE = "operations/alert.html"


def _back(data: Form, alert_id: uuid.UUID) -> str:
    back = str(data.get("back", ""))
    return back if _BACK.match(back) else f"{ALERTS_PATH}/{alert_id}"


def on_shelf(alert: Alert, now: datetime) -> bool:
    return alert.shelved_until is not None and alert.shelved_until > now


async def _alert_page(
    db_session: DbSession,
    principal: Principal,
    tenant: TenantContext,
    alert_id: uuid.UUID,
    values: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    alert = await AlertService(db_session, tenant).get(alert_id)
    plant = PlantService(db_session, tenant)
    return form_page(
        ALERT_PAGE,
        principal,
        alert=alert,
        now=datetime.now(UTC),
        site_name=await plant_name(plant, "site", alert.site_id),
        asset_name=await plant_name(plant, "asset", alert.asset_id),
        shelf_minutes=SHELF_MINUTES,
        values=values or {"minutes": "60"},
        **context,
    )


async def _act(
    state: State, back: str, act: Callable[[], Awaitable[Alert]], done: Callable[[Alert], str]
) -> Response[Any]:
    """One act of the alerts service, then back to the page it was asked from; an alert someone else
    changed in the meantime (already acknowledged, already resolved) says so instead of failing."""
    try:
        alert = await act()
    except ConflictError as exc:
        return redirect_with_notice(state.settings, back, f"Nothing changed: {exc.detail}.")
    return redirect_with_notice(state.settings, back, done(alert))


async def _each(
    state: State,
    incident_id: uuid.UUID,
    alert_ids: list[uuid.UUID],
    act: Callable[[uuid.UUID], Awaitable[Alert]],
    done: str,
    undone: str,
) -> Redirect:
    """An incident's button: the same act of the service on each of its alerts that needs it; if
    someone else changed one meanwhile, the request changes nothing and says so."""
    back = f"{INCIDENTS_PATH}/{incident_id}"
    if not alert_ids:
        return redirect_with_notice(state.settings, back, f"Nothing changed: no alert was left to be {undone}.")
    try:
        for alert_id in alert_ids:
            await act(alert_id)
    except ConflictError as exc:
        raise ConflictError(f"{exc.detail}; someone changed the incident meanwhile, reload it") from None
    return redirect_with_notice(state.settings, back, f"{done} {len(alert_ids)} alert(s).")


class IncidentsPageController(OperationsConsoleController):
    path = INCIDENTS_PATH

    @get("/", opt={"permission": P.EVENTS_READ})
    async def incidents(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        offset: FromQuery[int] = 0,
        status: FromQuery[str | None] = None,
        severity: FromQuery[str | None] = None,
        site_id: FromQuery[str | None] = None,
    ) -> Template:
        offset = first_row(offset)
        state, level = chosen(status, INCIDENT_STATES), chosen(severity, SEVERITIES)
        errors: dict[str, str] = {}
        site = attempt(errors, "site_id", lambda: site_filter(site_id))
        rows: list[Any] = []
        total = 0
        if not errors:
            found, total = await IncidentRepository(db_session, tenant).search(
                limit=PAGE_SIZE, offset=offset, status=state, severity=level, site_id=site
            )
            rows = list(found)
        sites = await sites_of(db_session, tenant)
        return page(
            "operations/incidents.html",
            status=422 if errors else 200,
            principal=principal,
            incidents=rows,
            total=total,
            status_options=options(INCIDENT_STATES),
            severity_options=options(SEVERITIES),
            sites=sites,
            site_names={s.id: s.name for s in sites},
            filters={"status": state or "", "severity": level or "", "site_id": site_id or ""},
            filtered=any((state, level, site)),
            errors=errors,
            **pager(offset, status=state, severity=level, site_id=site),
        )

    @get("/{incident_id:uuid}", opt={"permission": P.EVENTS_READ})
    async def incident(self, db_session: DbSession, principal: Caller, tenant: Tenant, incident_id: PathId) -> Template:
        incident, alerts, timeline = await AlertService(db_session, tenant).incident(incident_id)
        plant = PlantService(db_session, tenant)
        now = datetime.now(UTC)
        return page(
            "operations/incident.html",
            principal=principal,
            incident=incident,
            alerts=alerts,
            timeline=timeline,
            entry_kinds=ENTRY_KINDS,
            now=now,
            shelved={a.id for a in alerts if on_shelf(a, now)},
            triggered=sum(1 for a in alerts if a.status == "triggered"),
            unresolved=sum(1 for a in alerts if a.status != "resolved"),
            events=sum(a.count for a in alerts),
            site_name=await plant_name(plant, "site", incident.site_id),
            asset_name=await plant_name(plant, "asset", incident.asset_id),
        )

    @post("/{incident_id:uuid}/acknowledge", opt={"permission": P.ALERTS_WRITE})
    async def acknowledge(self, db_session: DbSession, tenant: Tenant, state: State, incident_id: PathId) -> Redirect:
        """Acknowledges each triggered alert of the incident, one act of the service per alert."""
        alerts = AlertService(db_session, tenant)
        _, members, _ = await alerts.incident(incident_id)
        waiting = [a.id for a in members if a.status == "triggered"]
        return await _each(state, incident_id, waiting, alerts.acknowledge, "Acknowledged", "acknowledged")

    @post("/{incident_id:uuid}/resolve", opt={"permission": P.ALERTS_WRITE})
    async def resolve(self, db_session: DbSession, tenant: Tenant, state: State, incident_id: PathId) -> Redirect:
        """Resolves each alert of the incident not resolved yet; the service closes the incident with the last."""
        alerts = AlertService(db_session, tenant)
        _, members, _ = await alerts.incident(incident_id)
        unresolved = [a.id for a in members if a.status != "resolved"]
        return await _each(state, incident_id, unresolved, alerts.resolve, "Resolved", "resolved")


class AlertsPageController(OperationsConsoleController):
    path = ALERTS_PATH

    @get("/", opt={"permission": P.EVENTS_READ})
    async def alerts(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        offset: FromQuery[int] = 0,
        status: FromQuery[str | None] = None,
        severity: FromQuery[str | None] = None,
        shelved: FromQuery[str | None] = None,
    ) -> Template:
        offset = first_row(offset)
        state, level, shelf = chosen(status, ALERT_STATES), chosen(severity, SEVERITIES), chosen(shelved, SHELF_STATES)
        rows, total = await AlertRepository(db_session, tenant).search(
            limit=PAGE_SIZE,
            offset=offset,
            status=state,
            severity=level,
            shelved=None if shelf is None else shelf == "yes",
        )
        return page(
            "operations/alerts.html",
            principal=principal,
            alerts=rows,
            total=total,
            now=datetime.now(UTC),
            status_options=options(ALERT_STATES),
            severity_options=options(SEVERITIES),
            shelf_options=[("yes", "On a shelf"), ("no", "Not on a shelf")],
            filters={"status": state or "", "severity": level or "", "shelved": shelf or ""},
            filtered=any((state, level, shelf)),
            **pager(offset, status=state, severity=level, shelved=shelf),
        )

    @get("/{alert_id:uuid}", opt={"permission": P.EVENTS_READ})
    async def alert(self, db_session: DbSession, principal: Caller, tenant: Tenant, alert_id: PathId) -> Template:
        return await _alert_page(db_session, principal, tenant, alert_id)

    @post("/{alert_id:uuid}/acknowledge", opt={"permission": P.ALERTS_WRITE})
    async def acknowledge(
        self, db_session: DbSession, tenant: Tenant, state: State, alert_id: PathId, data: Form
    ) -> Response[Any]:
        service = AlertService(db_session, tenant)
        return await _act(
            state, _back(data, alert_id), lambda: service.acknowledge(alert_id), lambda a: f"Acknowledged {a.title}."
        )

    @post("/{alert_id:uuid}/resolve", opt={"permission": P.ALERTS_WRITE})
    async def resolve(
        self, db_session: DbSession, tenant: Tenant, state: State, alert_id: PathId, data: Form
    ) -> Response[Any]:
        service = AlertService(db_session, tenant)
        return await _act(
            state, _back(data, alert_id), lambda: service.resolve(alert_id), lambda a: f"Resolved {a.title}."
        )

    @post("/{alert_id:uuid}/unshelve", opt={"permission": P.ALERTS_WRITE})
    async def unshelve(
        self, db_session: DbSession, tenant: Tenant, state: State, alert_id: PathId, data: Form
    ) -> Response[Any]:
        service = AlertService(db_session, tenant)
        return await _act(
            state,
            _back(data, alert_id),
            lambda: service.unshelve(alert_id),
            lambda a: f"Took {a.title} off the shelf: its repeats notify again.",
        )

    @post("/{alert_id:uuid}/shelve", opt={"permission": P.ALERTS_WRITE})
    async def shelve(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        alert_id: PathId,
        data: Form,
    ) -> Response[Any]:
        service = AlertService(db_session, tenant)
        await service.get(alert_id)  # another customer's alert is a 404 before any form problem
        values = {"minutes": str(data.get("minutes", "")).strip(), "reason": str(data.get("reason", "")).strip()}
        errors: dict[str, str] = {}
        if not values["minutes"].isdigit():
            errors["minutes"] = "choose how long"
        if not values["reason"]:
            errors["reason"] = "required"
        if errors:
            return await _alert_page(db_session, principal, tenant, alert_id, values, **refused(errors))
        try:
            shelf = msgspec.convert({"minutes": int(values["minutes"]), "reason": values["reason"]}, Shelve)
            alert = await service.shelve(alert_id, shelf)
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await service_refused(db_session, principal, exc)
            return await _alert_page(db_session, principal, tenant, alert_id, values, **problems)
        return redirect_with_notice(
            state.settings,
            _back(data, alert_id),
            f"Shelved {alert.title}: repeats are counted and notify nobody until the shelf expires.",
        )
