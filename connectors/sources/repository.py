"""All SQL of source connections and webhook deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from andon.connectors.sources.models import SourceConnection, WebhookDelivery
from andon.platform.db.repository import TenantRepository
from andon.platform.db.scope import allow_auth_lookup, enter_maintenance_mode


@dataclass(frozen=True, slots=True)
class ConnectionFound:
    """What the hook needs of a connection, read before any tenant is known and carried, detached,
    into the tenant's own transaction."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    kind: str
    enabled: bool
    source: str
    event_type: str | None
    verifier: str
    signature_header: str | None
    signature_prefix: str
    digest_encoding: str
    tolerance_seconds: int
    secret_sealed: str | None
    previous_secret_sealed: str | None
    previous_secret_expires_at: datetime | None
    config: dict[str, Any]
    mapping: dict[str, Any] | None


class ConnectionLookup:
    """The hook's one unscoped read: a delivery names its connection, and nothing else, so the tenant
    is learnt from the connection (as an API key's is from the key)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_id(self, connection_id: uuid.UUID) -> ConnectionFound | None:
        await allow_auth_lookup(self.session)
        stmt = select(SourceConnection).where(SourceConnection.id == connection_id)  # andon: unscoped-ok (auth)
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        return None if row is None else self._found(row)

    async def enabled_of_kind(self, kind: str) -> list[ConnectionFound]:
        """Every customer's enabled connections of a kind, for a channel that holds them all open (the
        MQTT subscriptions); what arrives on each is then handled inside its own tenant."""
        await allow_auth_lookup(self.session)
        stmt = select(SourceConnection).where(  # andon: unscoped-ok (auth)
            SourceConnection.kind == kind, SourceConnection.enabled.is_(True)
        )
        rows = (await self.session.execute(stmt.order_by(SourceConnection.id))).scalars().all()
        return [self._found(row) for row in rows]

    @staticmethod
    def _found(row: SourceConnection) -> ConnectionFound:
        return ConnectionFound(
            id=row.id,
            tenant_id=row.tenant_id,
            name=row.name,
            kind=row.kind,
            enabled=row.enabled,
            source=row.source,
            event_type=row.event_type,
            verifier=row.verifier,
            signature_header=row.signature_header,
            signature_prefix=row.signature_prefix,
            digest_encoding=row.digest_encoding,
            tolerance_seconds=row.tolerance_seconds,
            secret_sealed=row.secret_sealed,
            previous_secret_sealed=row.previous_secret_sealed,
            previous_secret_expires_at=row.previous_secret_expires_at,
            config=dict(row.config or {}),
            mapping=dict(row.mapping) if row.mapping is not None else None,
        )


class SourceConnectionRepository(TenantRepository[SourceConnection]):
    model = SourceConnection

    async def name_taken(self, name: str, other_than: uuid.UUID | None = None) -> bool:
        where = [SourceConnection.name == name]
        if other_than is not None:
            where.append(SourceConnection.id != other_than)
        return await self.count(*where) > 0

    async def page(self, *, limit: int, offset: int) -> tuple[Sequence[SourceConnection], int]:
        rows = await self.session.execute(
            self.select().order_by(SourceConnection.name, SourceConnection.id).limit(limit).offset(offset)
        )
        return rows.scalars().all(), await self.count()

    async def remove(self, connection: SourceConnection) -> None:
        # Deliveries go with their connection; said here rather than left to the foreign key, which
        # SQLite enforces only when its pragma is on.
        await self.session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.tenant_id == self.ctx.tenant_id, WebhookDelivery.connection_id == connection.id
            )
        )
        await self.delete(connection)

    async def count_delivery(self, connection_id: uuid.UUID, outcome: str, at: datetime) -> None:
        """One more delivery on the connection's counters, in SQL so concurrent deliveries add up."""
        counter = getattr(SourceConnection, f"deliveries_{outcome}")
        await self.session.execute(
            update(SourceConnection)
            .where(*self.scope(), SourceConnection.id == connection_id)
            .values(
                {
                    counter.key: counter + 1,
                    "last_delivery_at": at,
                    "last_delivery_outcome": outcome,
                    # Traffic is not an edit: updated_at keeps saying when the settings last changed.
                    "updated_at": SourceConnection.updated_at,
                }
            )
            .execution_options(synchronize_session=False)
        )


class DeliveryRepository(TenantRepository[WebhookDelivery]):
    model = WebhookDelivery

    async def for_connection(
        self, connection_id: uuid.UUID, *, limit: int, offset: int, outcome: str | None = None
    ) -> tuple[Sequence[WebhookDelivery], int]:
        where: list[ColumnElement[bool]] = [WebhookDelivery.connection_id == connection_id]
        if outcome:
            where.append(WebhookDelivery.outcome == outcome)
        rows = await self.session.execute(
            self.select()
            .where(*where)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.execute(
            select(func.count()).select_from(WebhookDelivery).where(*self.scope(), *where)
        )
        return rows.scalars().all(), int(total.scalar_one())


class DeliveryLogSweep:
    """The retention sweep's view of every tenant's delivery log: lines older than the period go."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def expire(self, before: datetime, limit: int) -> int:
        await enter_maintenance_mode(self.session)
        due = (
            select(WebhookDelivery.id)  # andon: unscoped-ok (retention sweep, maintenance mode)
            .where(WebhookDelivery.created_at < before)
            .limit(limit)
        )
        gone = await self.session.execute(
            delete(WebhookDelivery)  # andon: unscoped-ok (retention sweep, maintenance mode)
            .where(WebhookDelivery.id.in_(due.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        return int(gone.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class PollDue:
    """A polled connection whose turn has come: enough to enter its tenant and claim it there."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    kind: str


class DuePolls:
    """The poll scheduler's one unscoped read: which polled connections, of every customer, are due.
    Ids only; each is claimed, polled and updated inside its own tenant (``PollStateRepository``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def due(self, kinds: Collection[str], now: datetime, limit: int) -> list[PollDue]:
        await allow_auth_lookup(self.session)
        stmt = (
            select(  # andon: unscoped-ok (poll schedule, authentication lookup mode)
                SourceConnection.id, SourceConnection.tenant_id, SourceConnection.name, SourceConnection.kind
            )
            .where(
                SourceConnection.kind.in_(sorted(kinds)),
                SourceConnection.enabled.is_(True),
                SourceConnection.next_poll_at <= now,
            )
            .order_by(SourceConnection.next_poll_at)
            .limit(limit)
        )
        rows = await self.session.execute(stmt)
        return [PollDue(id=r.id, tenant_id=r.tenant_id, name=r.name, kind=r.kind) for r in rows]


class PollStateRepository(TenantRepository[SourceConnection]):
    """A polled connection's schedule and cursor. The claim moves ``next_poll_at`` to the end of a
    lease, and every later write names that lease: a process whose lease ran out, and whose connection
    another process has claimed since, writes nothing (``next_poll_at`` is the fencing token)."""

    model = SourceConnection
    STATE = frozenset({"cursor", "next_poll_at", "last_error"})

    async def claim(
        self, connection_id: uuid.UUID, kinds: Collection[str], now: datetime, lease_until: datetime
    ) -> tuple[ConnectionFound, str | None] | None:
        """The connection and its cursor if it is still due and no one else holds it (a row another
        transaction is claiming is skipped, not waited for)."""
        stmt = (
            self.select()
            .where(
                SourceConnection.id == connection_id,
                SourceConnection.kind.in_(sorted(kinds)),
                SourceConnection.enabled.is_(True),
                SourceConnection.next_poll_at <= now,
            )
            .with_for_update(skip_locked=True)
        )
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        if row is None or row.next_poll_at is None:
            return None
        if not await self.save(connection_id, row.next_poll_at, next_poll_at=lease_until):
            return None
        return ConnectionLookup._found(row), row.cursor

    async def save(self, connection_id: uuid.UUID, lease: datetime, **state: str | datetime | None) -> bool:
        """Writes ``cursor``, ``next_poll_at``, ``last_error`` if ``lease`` is still the connection's
        ``next_poll_at``; False when it is not (the lease was lost, or the connection is gone)."""
        if not state or not self.STATE.issuperset(state):
            raise ValueError(f"poll state is {sorted(self.STATE)}, not {sorted(state)}")
        result = await self.session.execute(
            update(SourceConnection)
            .where(*self.scope(), SourceConnection.id == connection_id, SourceConnection.next_poll_at == lease)
            # Polling is not an edit: updated_at keeps saying when the settings last changed.
            .values({**state, "updated_at": SourceConnection.updated_at})
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]
