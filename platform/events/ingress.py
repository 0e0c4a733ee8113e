"""Accepting events: each stored once, with an outbox message in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.events.envelope import CloudEvent
from andon.platform.events.repository import EventRepository, OutboxRepository
from andon.platform.http.errors import NotFoundError
from andon.platform.tenancy.context import TenantContext

PROCESS_ACTOR = "process_event"


@dataclass(frozen=True, slots=True)
class PlantRefs:
    site_id: uuid.UUID | None = None
    line_id: uuid.UUID | None = None
    asset_id: uuid.UUID | None = None


# The tenants domain answers which site, line and asset a sender's references name (an Andon id or
# an external id from the plant import); the kernel does not read the plant itself.
ResolvePlant = Callable[[AsyncSession, TenantContext, str | None, str | None], Awaitable[PlantRefs]]


@dataclass(frozen=True, slots=True)
class Accepted:
    id: uuid.UUID
    source: str
    event_id: str
    duplicate: bool


class EventIngress:
    def __init__(self, session: AsyncSession, tenant: TenantContext, resolve_plant: ResolvePlant) -> None:
        self.session = session
        self.tenant = tenant
        self.resolve_plant = resolve_plant
        self.events = EventRepository(session, tenant)
        self.outbox = OutboxRepository(session)

    async def accept(
        self,
        events: Sequence[CloudEvent],
        *,
        channel: str,
        raw: Sequence[bytes] | None = None,
        connection_id: uuid.UUID | None = None,
    ) -> list[Accepted]:
        for index, event in enumerate(events):
            if event.tenantid is not None and event.tenantid != self.tenant.tenant_id:
                where = f"[{index}].tenantid" if len(events) > 1 else "tenantid"
                raise NotFoundError(f"{where}: no such tenant here", extra={"errors": [{"field": where}]})
        rows = []
        for index, event in enumerate(events):
            # Only an event that names a site or an asset costs a plant lookup.
            refs = (
                await self.resolve_plant(self.session, self.tenant, event.siteid, event.assetid)
                if event.siteid or event.assetid
                else PlantRefs()
            )
            rows.append(
                {
                    "source": event.source,
                    "event_id": event.id,
                    "type": event.type,
                    "subject": event.subject,
                    "time": event.time,
                    "severity": event.severity,
                    "dedup_key": event.dedupkey,
                    "site_ref": event.siteid,
                    "asset_ref": event.assetid,
                    "site_id": refs.site_id,
                    "line_id": refs.line_id,
                    "asset_id": refs.asset_id,
                    "data": event.data,
                    "extensions": event.extras,
                    "raw": raw[index] if raw else msgspec.json.encode(event),
                    "channel": channel,
                    "connection_id": connection_id,
                    "status": "accepted",
                }
            )
        # Each new event and its outbox message are written together (one statement on PostgreSQL).
        args = [str(self.tenant.tenant_id), str(self.tenant.partner_id)]
        stored = await self.events.insert_many(rows, outbox_actor=PROCESS_ACTOR, outbox_args=args)
        return [
            Accepted(row_id, event.source, event.id, duplicate=not new)
            for event, (row_id, new) in zip(events, stored, strict=True)
        ]
