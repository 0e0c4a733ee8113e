"""The events the customer's systems sent, newest first, found by type, source, subject, site and time;
each with its envelope, its data, what it was matched to in the plant, and the payload as it arrived.

Events have no read service of their own: like the API's ``GET /api/v1/events``, these pages read
through the tenant-scoped ``EventRepository`` (which also narrows to a site-level grant's sites)."""

from __future__ import annotations

import json
from typing import Any

from litestar import get
from litestar.params import FromQuery
from litestar.response import Template

from andon.frontend.customer.console import PAGE_SIZE, first_row, pager
from andon.frontend.operations.console import (
    OperationsConsoleController,
    attempt,
    chosen,
    moment,
    plant_name,
    site_filter,
    sites_of,
)
from andon.frontend.pages import page
from andon.platform.auth.rbac import P
from andon.platform.events.catalogue import CATALOGUE
from andon.platform.events.models import Event
from andon.platform.events.repository import EventRepository
from andon.platform.http.errors import NotFoundError
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.platform.tenancy.context import TenantContext
from andon.tenants.plant.service import PlantService

EVENTS_PATH = "/operations/events"
TYPES = tuple((t.name, t.title) for t in CATALOGUE.values())
# A payload larger than this is shown cut short: the page is for reading, not for copying megabytes.
RAW_SHOWN = 64 * 1024


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def raw_text(raw: bytes) -> tuple[str, bool]:
    """The payload as text, byte for byte as it arrived (it is evidence), and whether it was cut short."""
    return raw[:RAW_SHOWN].decode("utf-8", errors="replace"), len(raw) > RAW_SHOWN


async def _event(db_session: DbSession, tenant: TenantContext, event_id: PathId) -> Event:
    event = await EventRepository(db_session, tenant).get(event_id)
    if event is None:
        raise NotFoundError("event not found")
    return event


class EventsPageController(OperationsConsoleController):
    path = EVENTS_PATH

    @get("/", opt={"permission": P.EVENTS_READ})
    async def events(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        offset: FromQuery[int] = 0,
        type: FromQuery[str | None] = None,
        source: FromQuery[str | None] = None,
        subject: FromQuery[str | None] = None,
        site_id: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> Template:
        offset = first_row(offset)
        kind = chosen(type, [name for name, _ in TYPES])
        source = (source or "").strip()[:500] or None
        subject = (subject or "").strip()[:255] or None
        values = {"since": since or "", "until": until or "", "site_id": site_id or ""}
        errors: dict[str, str] = {}
        site = attempt(errors, "site_id", lambda: site_filter(site_id))
        start = attempt(errors, "since", lambda: moment(since, "since"))
        end = attempt(errors, "until", lambda: moment(until, "until"))
        rows: list[Event] = []
        total = 0
        if not errors:
            found, total = await EventRepository(db_session, tenant).search(
                limit=PAGE_SIZE,
                offset=offset,
                type=kind,
                source=source,
                subject=subject,
                site_id=site,
                since=start,
                until=end,
            )
            rows = list(found)
        sites = await sites_of(db_session, tenant)
        return page(
            "operations/events.html",
            status=422 if errors else 200,
            principal=principal,
            events=rows,
            total=total,
            types=TYPES,
            titles=dict(TYPES),
            sites=sites,
            site_names={s.id: s.name for s in sites},
            filters={"type": kind or "", "source": source or "", "subject": subject or "", **values},
            filtered=any((kind, source, subject, site, start, end)),
            errors=errors,
            **pager(offset, type=kind, source=source, subject=subject, site_id=site, since=since, until=until),
        )

    @get("/{event_id:uuid}", opt={"permission": P.EVENTS_READ})
    async def event(self, db_session: DbSession, principal: Caller, tenant: Tenant, event_id: PathId) -> Template:
        event = await _event(db_session, tenant, event_id)
        plant = PlantService(db_session, tenant)
        raw, cut = raw_text(event.raw) if event.raw is not None else (None, False)
        return page(
            "operations/event.html",
            principal=principal,
            event=event,
            title=CATALOGUE[event.type].title if event.type in CATALOGUE else None,
            site_name=await plant_name(plant, "site", event.site_id),
            line_name=await plant_name(plant, "line", event.line_id),
            asset_name=await plant_name(plant, "asset", event.asset_id),
            data=pretty(event.data),
            extensions=pretty(event.extensions) if event.extensions else None,
            raw=raw,
            raw_cut=cut,
            raw_size=len(event.raw) if event.raw is not None else 0,
        )
