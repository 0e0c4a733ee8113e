"""All SQL of events and of the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.db.ids import new_id
from andon.platform.db.repository import TenantRepository, within_sites
from andon.platform.db.scope import enter_maintenance_mode, enter_relay_mode, is_postgres
from andon.platform.db.types import utcnow
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

    async def insert_many(
        self, rows: Sequence[dict[str, Any]], *, outbox_actor: str, outbox_args: Sequence[str]
    ) -> list[tuple[uuid.UUID, bool]]:
        """Store each event unless (tenant, source, id) is already there (an earlier row of ``rows``
        included), and for each one stored an outbox message ``outbox_actor(*outbox_args, row id)``:
        (row id, whether new) per row, in order.

        On PostgreSQL one statement stores all events and their outbox rows (``unnest`` keeps its text
        the same for any number of rows, so it is prepared once per connection); a second reads the
        ids of repeats, only when there are some."""
        if not rows:
            return []
        if not is_postgres(self.session):
            stored = []
            for values in rows:
                row_id, new = await self.insert_once(values)
                if new:
                    args = [*outbox_args, str(row_id)]
                    self.session.add(OutboxMessage(tenant_id=self.ctx.tenant_id, actor=outbox_actor, args=args))
                stored.append((row_id, new))
            return stored
        ids = [new_id() for _ in rows]
        params: dict[str, Any] = {name: [r.get(name) for r in rows] for name, _ in _BULK_COLUMNS}
        params["data"] = [_json(r.get("data")) for r in rows]
        params["extensions"] = [_json(r.get("extensions") or {}) for r in rows]
        now = utcnow()
        params |= {
            "id": ids,
            "message_id": [new_id() for _ in rows],
            "tenant_id": self.ctx.tenant_id,
            "now": now,
            "actor": outbox_actor,
            "args": msgspec.json.encode(list(outbox_args)).decode(),
        }
        stored_ids = {row[0] for row in await self.session.execute(_BULK_INSERT, params)}
        repeats = {
            (r["source"], r["event_id"]) for r, row_id in zip(rows, ids, strict=True) if row_id not in stored_ids
        }
        existing: dict[tuple[str, str], uuid.UUID] = {}
        if repeats:
            found = await self.session.execute(
                select(Event.source, Event.event_id, Event.id).where(
                    *self.scope(), tuple_(Event.source, Event.event_id).in_(sorted(repeats))
                )
            )
            existing = {(source, event_id): row_id for source, event_id, row_id in found}
        return [
            (row_id, True) if row_id in stored_ids else (existing[(r["source"], r["event_id"])], False)
            for r, row_id in zip(rows, ids, strict=True)
        ]

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


class RawPayloadSweep:
    """The retention sweep's view: every tenant's events, for clearing raw payloads past retention."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def expire(self, received_before: datetime, limit: int) -> int:
        """Clears the raw payload of up to ``limit`` events received before the cutoff; the number cleared."""
        await enter_maintenance_mode(self.session)
        due = (
            select(Event.id)  # andon: unscoped-ok (retention sweep, maintenance mode)
            .where(Event.created_at < received_before, Event.raw.is_not(None))
            .limit(limit)
        )
        cleared = await self.session.execute(
            update(Event)  # andon: unscoped-ok (retention sweep, maintenance mode)
            .where(Event.id.in_(due.scalar_subquery()))
            .values(raw=None)
            .execution_options(synchronize_session=False)
        )
        return int(cleared.rowcount or 0)  # type: ignore[attr-defined]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


# Columns of a bulk insert, and their PostgreSQL array types (``data`` and ``extensions`` are JSON text).
_BULK_COLUMNS = (
    ("source", "text"),
    ("event_id", "text"),
    ("type", "text"),
    ("subject", "text"),
    ("time", "timestamptz"),
    ("severity", "text"),
    ("dedup_key", "text"),
    ("site_ref", "text"),
    ("asset_ref", "text"),
    ("site_id", "uuid"),
    ("line_id", "uuid"),
    ("asset_id", "uuid"),
    ("data", "jsonb"),
    ("extensions", "jsonb"),
    ("raw", "bytea"),
    ("channel", "text"),
    ("connection_id", "uuid"),
    ("status", "text"),
)
# Relays LISTEN here: a commit that adds outbox rows wakes them at once (PostgreSQL folds the
# notifications of one transaction into one), instead of their next poll.
OUTBOX_CHANNEL = "andon_outbox"
_NAMES = ", ".join(name for name, _ in _BULK_COLUMNS)
_ARRAYS = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _BULK_COLUMNS)
# The tenant's own rows only: row-level security checks each insert against the scope of the
# transaction, as for any other statement. The f-string joins only the constant column names above.
_BULK_SQL = f"""
WITH incoming AS (
    SELECT * FROM unnest(CAST(:id AS uuid[]), CAST(:message_id AS uuid[]), {_ARRAYS})
        WITH ORDINALITY AS t(id, message_id, {_NAMES}, position)
),
stored AS (
    INSERT INTO events (id, tenant_id, created_at, updated_at, {_NAMES})
    SELECT id, :tenant_id, :now, :now, {_NAMES} FROM incoming ORDER BY position
    ON CONFLICT (tenant_id, source, event_id) DO NOTHING
    RETURNING id
),
announced AS (
    INSERT INTO outbox (tenant_id, actor, args, created_at, attempts, message_id)
    SELECT :tenant_id, :actor, CAST(:args AS jsonb) || jsonb_build_array(stored.id::text), :now, 0, incoming.message_id
    FROM stored JOIN incoming USING (id) ORDER BY incoming.position
)
SELECT id, pg_notify('{OUTBOX_CHANNEL}', '') FROM stored
"""  # noqa: S608
_BULK_INSERT = text(_BULK_SQL)  # andon: unscoped-ok (inserts carry the repository's tenant; RLS checks them)


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
