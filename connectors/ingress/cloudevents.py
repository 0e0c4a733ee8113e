"""CloudEvents over HTTP: ``POST /api/v1/events`` in structured, binary and batch mode, with the
tenant's API keys; and the stored events, listed with filters.

A customer's key sends for that customer. A partner's key names the customer in the ``tenantid``
extension (one customer per request), and reaches it only while the customer allows its partner in.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromQuery

from andon.platform.api.schemas import Page, to_read
from andon.platform.auth.rbac import P
from andon.platform.events.catalogue import CATALOGUE, json_schema
from andon.platform.events.committer import GroupCommitter
from andon.platform.events.envelope import BATCH, STRUCTURED, CloudEvent, parse_batch, parse_binary, parse_structured
from andon.platform.events.ingress import Accepted, EventIngress
from andon.platform.events.repository import EventRepository
from andon.platform.events.schemas import AcceptedRead, BatchAccepted, EventRead, EventTypeRead
from andon.platform.http.dependencies import unit_of_work
from andon.platform.http.errors import NotFoundError, ValidationFailedError, field_error
from andon.platform.http.params import Caller, DbSession, Limit, Offset, OptionalId
from andon.platform.observability.metrics import count_events
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.orgs.service import CustomerService
from andon.tenants.plant.references import resolve_plant_refs


async def _tenant_for(db_session: DbSession, principal: Principal, named: uuid.UUID | None) -> TenantContext:
    if principal.org_kind is OrgKind.CUSTOMER and principal.customer_id is not None:
        if named is not None and named != principal.customer_id:
            raise NotFoundError("tenantid: no such tenant here", extra={"errors": [{"field": "tenantid"}]})
        return await CustomerService(db_session, principal).open_tenant(principal.customer_id)
    if named is None:
        raise field_error("tenantid", "a partner's key must name the customer (the tenantid extension)")
    return await CustomerService(db_session, principal).open_tenant(named)


async def _accept(
    state: State, principal: Principal, named: uuid.UUID | None, events: list[CloudEvent], raw: list[bytes]
) -> list[Accepted]:
    """Stored and committed when this returns. Each event is an insert attempt, repeat or not: the
    rate limit charges a batch its size, before anything is stored."""
    if principal.org_kind is OrgKind.CUSTOMER and principal.customer_id is not None:
        if named is not None and named != principal.customer_id:
            raise NotFoundError("tenantid: no such tenant here", extra={"errors": [{"field": "tenantid"}]})
        # The key names its tenant: charge it, then commit together with concurrent requests.
        await state.rate_limiter.check_events(principal.customer_id, len(events))
        committer: GroupCommitter = state.event_committer
        return await committer.accept(principal, principal.customer_id, events, channel="http", raw=raw)
    async with unit_of_work(state.sessionmaker, principal) as session:
        tenant = await _tenant_for(session, principal, named)
        await state.rate_limiter.check_events(tenant.tenant_id, len(events))
        return await EventIngress(session, tenant, resolve_plant_refs).accept(events, channel="http", raw=raw)


def _one_tenant(events: list[CloudEvent]) -> uuid.UUID | None:
    named = {e.tenantid for e in events}
    if len(named) > 1:
        raise field_error("tenantid", "one request carries events of one customer")
    return next(iter(named))


class CloudEventsController(Controller):
    path = "/api/v1"
    tags = ["Events"]

    @post(
        "/events",
        opt={"permission": P.EVENTS_WRITE},
        status_code=201,
        description=(
            "CloudEvents 1.0 in structured (`application/cloudevents+json`), binary (`ce-*` headers) or batch "
            "(`application/cloudevents-batch+json`) mode. Each event is stored once per (source, id): a repeat "
            "answers 200 with the original acceptance. Each customer may send `limits.events_per_second` events a "
            "second (a batch counts its events), with bursts up to `limits.events_burst`; faster sending is "
            "answered 429 with `Retry-After`, and nothing of that request is stored."
        ),
    )
    async def ingest(self, request: Request[Any, Any, Any], principal: Caller, state: State) -> Response[Any]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        if content_type == BATCH:
            parsed = parse_batch(body)
            events, raw = [e for e, _ in parsed], [r for _, r in parsed]
        elif content_type == STRUCTURED:
            events, raw = [parse_structured(body)], [body]
        elif any(name.lower().startswith("ce-") for name in request.headers):
            events, raw = [parse_binary(dict(request.headers), content_type, body)], [body]
        else:
            raise ValidationFailedError(
                f"send {STRUCTURED}, {BATCH}, or binary mode (ce-id, ce-source, ce-type, ce-specversion headers)",
                extra={
                    "errors": [{"field": "content-type", "message": f"{content_type or 'none'} is not CloudEvents"}]
                },
            )
        accepted = await _accept(state, principal, _one_tenant(events), events, raw)
        # Committed: the relay may send the outbox rows now.
        state.relay.wake()
        new = sum(1 for a in accepted if not a.duplicate)
        count_events("http", new, len(accepted) - new)
        reads = [AcceptedRead(id=a.id, source=a.source, event_id=a.event_id, duplicate=a.duplicate) for a in accepted]
        status = 201 if new else 200
        if content_type == BATCH:
            return Response(BatchAccepted(accepted=reads, new=new, duplicates=len(reads) - new), status_code=status)
        return Response(reads[0], status_code=status)

    @get("/events", opt={"permission": P.EVENTS_READ})
    async def list_events(
        self,
        db_session: DbSession,
        principal: Caller,
        limit: Limit = 50,
        offset: Offset = 0,
        customer_id: OptionalId = None,
        type: FromQuery[str | None] = None,
        source: FromQuery[str | None] = None,
        subject: FromQuery[str | None] = None,
        site_id: OptionalId = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> Page[EventRead]:
        """Newest first. A partner's key names the customer with ``customer_id``."""
        tenant = await _tenant_for(db_session, principal, customer_id)
        rows, total = await EventRepository(db_session, tenant).search(
            limit=limit,
            offset=offset,
            type=type,
            source=source,
            subject=subject,
            site_id=site_id,
            since=since,
            until=until,
        )
        return Page(items=[to_read(r, EventRead) for r in rows], total=total, limit=limit, offset=offset)

    @get("/event-types", opt={"public": True})
    async def event_types(self) -> list[EventTypeRead]:
        """The catalogue: every type Andon accepts, with the JSON Schema of its ``data``."""
        return [
            EventTypeRead(type=t.name, title=t.title, alarm=t.alarm, data_schema=json_schema(t))
            for t in CATALOGUE.values()
        ]
