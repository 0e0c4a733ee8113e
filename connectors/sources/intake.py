"""Deliveries on a source connection, whatever the channel (webhook, MQTT message, polled page or file).

A delivery names only its connection. The connection is read in the authentication lookup mode;
checking the delivery (a signature), mapping it to events, storing them and logging the delivery
then happen inside the connection's tenant, as the connection itself, which may only send events.
A refused delivery is logged too, in a transaction of its own, with more detail than the sender is
told (a wrong signature and a stale timestamp look the same from outside).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.sources.mapping import Stamp, map_items
from andon.connectors.sources.models import WebhookDelivery
from andon.connectors.sources.repository import (
    ConnectionFound,
    ConnectionLookup,
    DeliveryLogSweep,
    DeliveryRepository,
    SourceConnectionRepository,
)
from andon.platform.auth.rbac import P
from andon.platform.db.scope import apply_principal_scope
from andon.platform.db.types import utcnow
from andon.platform.events.envelope import CloudEvent
from andon.platform.events.ingress import Accepted, EventIngress
from andon.platform.events.retention import sweep
from andon.platform.http.errors import AndonError, NotFoundError, field_error
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind
from andon.tenants.orgs.service import CustomerService, org_is_active
from andon.tenants.plant.references import resolve_plant_refs

NOT_HERE = "no such connection, or it is disabled"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One arrival on a connection."""

    # As it arrived (kept as the raw payload of a single event).
    body: bytes
    # The decoded payloads, when the channel decoded them (a CSV file's rows); None: the body is JSON.
    payloads: Sequence[Any] | None = None
    # What the sender calls it, for the delivery log: a webhook-id, an MQTT topic, a file name.
    reference: str | None = None
    # The id of an event that names none (a webhook-id); None: a hash of the item.
    delivery_id: str | None = None
    # Attributes the channel knows (the site of an MQTT topic), used where the payload says nothing.
    defaults: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    accepted: list[Accepted]

    @property
    def new(self) -> int:
        return sum(1 for a in self.accepted if not a.duplicate)

    @property
    def duplicates(self) -> int:
        return len(self.accepted) - self.new


class Refused(Exception):
    """A refusal whose logged reason says more than the answer the sender gets."""

    def __init__(self, answer: AndonError, reason: str) -> None:
        super().__init__(reason)
        self.answer = answer
        self.reason = reason


class Unlogged(NotFoundError):
    """Refused before the tenant could be entered: there is nowhere to log it."""


# Checks a delivery before anything is stored (a webhook's signature); raises Refused.
Check = Callable[[ConnectionFound, datetime], None]


class ConnectionIntake:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def find(self, connection_id: uuid.UUID) -> ConnectionFound | None:
        async with self.sessionmaker() as session, session.begin():
            return await ConnectionLookup(session).by_id(connection_id)

    async def receive(
        self, found: ConnectionFound, delivery: Delivery, *, channel: str, check: Check | None = None
    ) -> Receipt:
        async with self.sessionmaker() as session:
            try:
                async with session.begin():
                    tenant = await self._enter(session, found)
                    if not found.enabled:
                        raise Refused(NotFoundError(NOT_HERE), "the connection is disabled")
                    if check is not None:
                        check(found, utcnow())
                    events, raw = to_events(found, delivery)
                    ingress = EventIngress(session, tenant, resolve_plant_refs)
                    accepted = await ingress.accept(events, channel=channel, raw=raw, connection_id=found.id)
                    duplicate = all(a.duplicate for a in accepted)
                    await self._log(
                        session,
                        tenant,
                        found,
                        delivery,
                        outcome="duplicate" if duplicate else "accepted",
                        status=200 if duplicate else 201,
                        event_ids=[str(a.id) for a in accepted],
                    )
                return Receipt(accepted)
            except Refused as refusal:
                # The attempt's transaction is gone, with anything it wrote; the refusal is logged
                # in a transaction of its own.
                await self._log_refusal(session, found, delivery, refusal.answer.status_code, refusal.reason)
                raise refusal.answer from None
            except Unlogged:
                raise
            except AndonError as refusal:
                await self._log_refusal(session, found, delivery, refusal.status_code, refusal.detail)
                raise

    async def refuse(self, found: ConnectionFound, delivery: Delivery, refusal: Refused) -> None:
        """Logs a delivery the channel refused before the intake saw it (a webhook's signature)."""
        async with self.sessionmaker() as session:
            await self._log_refusal(session, found, delivery, refusal.answer.status_code, refusal.reason)

    async def _enter(self, session: AsyncSession, found: ConnectionFound) -> TenantContext:
        """The connection's tenant, entered as the connection itself (it may only send events)."""
        principal = Principal(
            subject_kind=SubjectKind.SERVICE,
            subject_id=found.id,
            label=f"{found.kind} connection {found.name}",
            org_kind=OrgKind.CUSTOMER,
            customer_id=found.tenant_id,
            permissions=frozenset({P.EVENTS_WRITE}),
        )
        await apply_principal_scope(session, principal)
        if not await org_is_active(session, principal):
            # A suspended customer takes no deliveries; the sender learns no more than for a wrong id.
            raise Unlogged(NOT_HERE)
        return await CustomerService(session, principal).open_tenant(found.tenant_id)

    async def _log(
        self,
        session: AsyncSession,
        tenant: TenantContext,
        found: ConnectionFound,
        delivery: Delivery,
        *,
        outcome: str,
        status: int,
        reason: str | None = None,
        event_ids: list[str] | None = None,
    ) -> None:
        reference = delivery.reference
        await DeliveryRepository(session, tenant).add(
            WebhookDelivery(
                connection_id=found.id,
                webhook_id=reference[:255] if reference else None,
                outcome=outcome,
                status_code=status,
                reason=reason[:500] if reason else None,
                event_ids=event_ids or [],
            )
        )
        await SourceConnectionRepository(session, tenant).count_delivery(found.id, outcome, utcnow())

    async def _log_refusal(
        self, session: AsyncSession, found: ConnectionFound, delivery: Delivery, status: int, reason: str
    ) -> None:
        async with session.begin():
            tenant = await self._enter(session, found)
            await self._log(session, tenant, found, delivery, outcome="refused", status=status, reason=reason)


def to_events(found: ConnectionFound, delivery: Delivery) -> tuple[list[CloudEvent], list[bytes]]:
    """The events a delivery stands for, each with the raw bytes to keep: the body when it is one
    event, else each item's own JSON."""
    if delivery.payloads is None:
        try:
            payloads: Sequence[Any] = [msgspec.json.decode(delivery.body)]
        except msgspec.DecodeError as exc:
            raise field_error("$", f"the body is not JSON ({exc})") from None
    else:
        payloads = delivery.payloads
    stamp = Stamp(
        source=found.source,
        event_type=found.event_type,
        delivery_id=delivery.delivery_id,
        defaults=delivery.defaults,
    )
    mapped: list[tuple[CloudEvent, Any]] = []
    for payload in payloads:
        mapped += map_items(payload, found.mapping, stamp)
    if len(mapped) == 1 and delivery.payloads is None:
        return [mapped[0][0]], [delivery.body]
    return [event for event, _ in mapped], [msgspec.json.encode(item) for _, item in mapped]


async def expire_delivery_log(sessionmaker: async_sessionmaker[AsyncSession], days: int) -> int:
    """Delivery-log lines older than ``days`` go (refused deliveries included: the log stays bounded)."""

    async def expire(session: AsyncSession, cutoff: datetime, limit: int) -> int:
        return await DeliveryLogSweep(session).expire(cutoff, limit)

    return await sweep(sessionmaker, expire, days, "delivery log")
