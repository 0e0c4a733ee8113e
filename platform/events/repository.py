"""All SQL of events and of the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.db.repository import TenantRepository, within_sites
from andon.platform.db.scope import enter_relay_mode, is_postgres
from andon.platform.events.models import Event, OutboxMessage


class EventRepository(TenantRepository[Event]):
    model = Event

    def scope(self) -> list[ColumnElement[bool]]:
        return super().scope() + within_sites(Event.site_id, self.ctx.principal.site_ids)

    async def insert_once(self, values: dict[str, Any]) -> tuple[uuid.UUID, bool]:
        """Store the event unless (tenant, source, id) is already there: (its row id, whether new).

        ``ON CONFLICT DO NOTHING`` keeps a duplicate from aborting the transaction (a batch may hold
        both new events and repeats), and costs one statement for the common, new case."""
        values = {**values, "tenant_id": self.ctx.tenant_id}
        insert = pg_insert if is_postgres(self.session) else sqlite_insert
        stmt = (
            insert(Event)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "source", "event_id"])
            .returning(Event.id)
        )
        new_id = (await self.session.execute(stmt)).scalar_one_or_none()
        if new_id is not None:
            return new_id, True
        existing = await self.session.execute(
            select(Event.id).where(
                *self.scope(), Event.source == values["source"], Event.event_id == values["event_id"]
            )
        )
        return existing.scalar_one(), False

    async def search(
        self,
        *,
        limit: int,
        offset: int,
        type: str | None = None,
        source: str | None = None,
        subject: str | None = None,
        site_id: uuid.UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[Sequence[Event], int]:
        where: list[ColumnElement[bool]] = []
        for column, value in ((Event.type, type), (Event.source, source), (Event.subject, subject)):
            if value:
                where.append(column == value)
        if site_id:
            where.append(Event.site_id == site_id)
        if since:
            where.append(Event.created_at >= since)
        if until:
            where.append(Event.created_at < until)
        rows = await self.session.execute(
            self.select().where(*where).order_by(Event.created_at.desc(), Event.id.desc()).limit(limit).offset(offset)
        )
        total = await self.session.execute(select(func.count()).select_from(Event).where(*self.scope(), *where))
        return rows.scalars().all(), int(total.scalar_one())

    async def claim_for_processing(self, event_id: uuid.UUID, now: datetime) -> Event | None:
        """The event, marked processed, when this caller is the first to process it; None for a repeat
        message (the broker delivers at least once)."""
        claimed = await self.session.execute(
            update(Event)
            .where(*self.scope(), Event.id == event_id, Event.status == "accepted")
            .values(status="processed", processed_at=now)
            .returning(Event.id)
        )
        if claimed.scalar_one_or_none() is None:
            return None
        return await self.get(event_id)


class OutboxRepository:
    """The relay's view: every tenant's pending messages, read in an explicit relay mode."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, tenant_id: uuid.UUID, actor: str, args: list[Any]) -> None:
        self.session.add(OutboxMessage(tenant_id=tenant_id, actor=actor, args=args))

    async def enter_relay_mode(self) -> None:
        await enter_relay_mode(self.session)

    async def pending(self, limit: int) -> Sequence[OutboxMessage]:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id).limit(limit)  # andon: unscoped-ok (the relay)
        if is_postgres(self.session):
            # Two relays never send the same rows; each takes what the other has not locked.
            stmt = stmt.with_for_update(skip_locked=True)
        return (await self.session.execute(stmt)).scalars().all()

    async def remove(self, ids: Sequence[int]) -> None:
        await self.session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))  # andon: unscoped-ok

    async def count_pending(self) -> int:
        stmt = select(func.count()).select_from(OutboxMessage)  # andon: unscoped-ok (the relay)
        return int((await self.session.execute(stmt)).scalar_one())
