"""All SQL of usage records (tenant-scoped). Aggregation happens in the database, never by loading
records into Python."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Uuid, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.usage.models import UsageMark, UsageRecord
from andon.connectors.outbound.models import ConnectorCall
from andon.platform.db.repository import TenantRepository
from andon.platform.db.scope import enter_metering_mode, is_postgres
from andon.platform.db.types import UTCDateTime
from andon.platform.engine.models import StepRun, WorkflowRun
from andon.platform.events.models import Event
from andon.platform.identity.models import User
from andon.tenants.orgs.models import Customer
from andon.tenants.plant.models import Asset

# How far a source has been read: the (time, id) of the last row metered.
Mark = tuple[datetime, uuid.UUID]
# Rows per INSERT: well under PostgreSQL's 32,767 bind parameters at 12 columns a row.
CHUNK = 1000


async def _insert_new(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    insert = pg_insert if is_postgres(session) else sqlite_insert
    # One statement with many parameter sets: SQLAlchemy sends them as batched multi-row INSERTs
    # ("insertmanyvalues") from one compiled statement, and RETURNING says which rows were new.
    stmt = (
        insert(UsageRecord)
        .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        .returning(UsageRecord.id)
    )
    added = 0
    for start in range(0, len(rows), CHUNK):
        added += len((await session.execute(stmt, list(rows[start : start + CHUNK]))).all())
    return added


class UsageRepository(TenantRepository[UsageRecord]):
    model = UsageRecord

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> int:  # type: ignore[override]
        """Inserts the records not seen before (by idempotency key); how many were new."""
        return await _insert_new(self.session, [{**row, "tenant_id": self.ctx.tenant_id} for row in rows])

    def _in(self, period: str, meter: str | None = None) -> Select[Any]:
        where = [*self.scope(), UsageRecord.period == period]
        if meter is not None:
            where.append(UsageRecord.meter == meter)
        return select().where(*where)

    async def totals(self, period: str) -> list[tuple[str, int, int, int]]:
        """(meter, sum, count, max) per meter in the period."""
        stmt = (
            self._in(period)
            .add_columns(
                UsageRecord.meter,
                func.sum(UsageRecord.quantity),
                func.count(),
                func.max(UsageRecord.quantity),
            )
            .group_by(UsageRecord.meter)
        )
        return [(m, int(s), int(c), int(x)) for m, s, c, x in (await self.session.execute(stmt)).all()]

    async def last_values(self, period: str, meters: Sequence[str]) -> dict[str, int]:
        """Each gauge meter's latest reported value in the period (ties: the larger value)."""
        if not meters:
            return {}
        ranked = (
            self._in(period)
            .where(UsageRecord.meter.in_(meters))
            .add_columns(
                UsageRecord.meter,
                UsageRecord.quantity,
                func.row_number()
                .over(
                    partition_by=UsageRecord.meter,
                    order_by=(UsageRecord.occurred_at.desc(), UsageRecord.quantity.desc()),
                )
                .label("rank"),
            )
            .subquery()
        )
        stmt = select(ranked.c.meter, ranked.c.quantity).where(ranked.c.rank == 1)
        return {m: int(v) for m, v in (await self.session.execute(stmt)).all()}

    async def distinct_values(self, period: str, meter: str, dimension: str) -> int:
        value = UsageRecord.dimensions[dimension].as_string()
        stmt = self._in(period, meter).add_columns(func.count(func.distinct(value)))
        return int((await self.session.execute(stmt)).scalar_one())

    async def by_dimension(self, period: str, meter: str, dimension: str) -> list[tuple[str | None, int]]:
        """The meter's sum per value of a dimension (per site, per template)."""
        value = UsageRecord.dimensions[dimension].as_string()
        stmt = (
            self._in(period, meter).add_columns(value, func.sum(UsageRecord.quantity)).group_by(value).order_by(value)
        )
        return [(v, int(s)) for v, s in (await self.session.execute(stmt)).all()]

    def _day(self) -> Any:
        """The UTC day of a record as ``YYYY-MM-DD`` text, computed by the database."""
        if is_postgres(self.session):
            return func.to_char(func.timezone("UTC", UsageRecord.occurred_at), "YYYY-MM-DD")
        # SQLite keeps the UTC timestamp as ISO text; its first ten characters are the day.
        return func.strftime("%Y-%m-%d", UsageRecord.occurred_at)

    async def daily(self, period: str) -> list[tuple[str, str, int, int, int]]:
        """(day, meter, sum, count, max) per UTC day of occurrence and meter in the period."""
        day = self._day().label("day")
        stmt = (
            self._in(period)
            .add_columns(
                day, UsageRecord.meter, func.sum(UsageRecord.quantity), func.count(), func.max(UsageRecord.quantity)
            )
            .group_by(day, UsageRecord.meter)
            .order_by(day, UsageRecord.meter)
        )
        return [(str(d), m, int(s), int(c), int(x)) for d, m, s, c, x in (await self.session.execute(stmt)).all()]

    async def daily_distinct(self, period: str, meter: str, dimension: str) -> list[tuple[str, int]]:
        """(day, distinct values of the dimension) per UTC day, for a ``unique`` meter."""
        day = self._day().label("day")
        value = UsageRecord.dimensions[dimension].as_string()
        stmt = self._in(period, meter).add_columns(day, func.count(func.distinct(value))).group_by(day).order_by(day)
        return [(str(d), int(n)) for d, n in (await self.session.execute(stmt)).all()]

    async def late_count(self, period: str) -> int:
        stmt = self._in(period).add_columns(func.count()).where(UsageRecord.late.is_(True))
        return int((await self.session.execute(stmt)).scalar_one())


class MeteringSweep:
    """The usage collector's view: what every tenant did since the collector's marks, read in
    (time, id) order, and the usage records it appends. Metering mode on PostgreSQL opens exactly
    these reads and that insert."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enter(self) -> None:
        await enter_metering_mode(self.session)

    async def mark(self, source: str) -> Mark | None:
        row = await self.session.get(UsageMark, source)
        return (row.at, row.last_id) if row else None

    async def save_mark(self, source: str, at: datetime, last_id: uuid.UUID) -> None:
        row = await self.session.get(UsageMark, source)
        if row is None:
            self.session.add(UsageMark(source=source, at=at, last_id=last_id))
        else:
            row.at, row.last_id = at, last_id
        await self.session.flush()

    async def _after(
        self, stmt: Any, at: Any, row_id: Any, mark: Mark | None, until: datetime, limit: int
    ) -> list[tuple[Any, ...]]:
        stmt = stmt.where(at < until, at.is_not(None))
        if mark is not None:
            stmt = stmt.where(tuple_(at, row_id) > tuple_(literal(mark[0], UTCDateTime()), literal(mark[1], Uuid())))
        return [tuple(r) for r in (await self.session.execute(stmt.order_by(at, row_id).limit(limit))).all()]

    async def events(self, mark: Mark | None, until: datetime, limit: int) -> list[tuple[Any, ...]]:
        """(id, at, tenant_id, partner_id, site_id) of events stored since the mark."""
        stmt = select(  # andon: unscoped-ok (usage collector, metering mode)
            Event.id, Event.created_at, Event.tenant_id, Customer.partner_id, Event.site_id
        ).join(Customer, Customer.id == Event.tenant_id)
        return await self._after(stmt, Event.created_at, Event.id, mark, until, limit)

    async def runs(self, mark: Mark | None, until: datetime, limit: int) -> list[tuple[Any, ...]]:
        """(id, at, tenant_id, partner_id, site_id, workflow_key) of runs started since the mark."""
        stmt = select(  # andon: unscoped-ok (usage collector, metering mode)
            WorkflowRun.id,
            WorkflowRun.created_at,
            WorkflowRun.tenant_id,
            Customer.partner_id,
            WorkflowRun.site_id,
            WorkflowRun.workflow_key,
        ).join(Customer, Customer.id == WorkflowRun.tenant_id)
        return await self._after(stmt, WorkflowRun.created_at, WorkflowRun.id, mark, until, limit)

    async def steps(self, mark: Mark | None, until: datetime, limit: int) -> list[tuple[Any, ...]]:
        """(id, at, tenant_id, partner_id, site_id, workflow_key, kind, status) of steps finished
        since the mark (a step run again after its run is retried finishes again, later)."""
        stmt = select(  # andon: unscoped-ok (usage collector, metering mode)
            StepRun.id,
            StepRun.finished_at,
            StepRun.tenant_id,
            StepRun.partner_id,
            WorkflowRun.site_id,
            WorkflowRun.workflow_key,
            StepRun.kind,
            StepRun.status,
        ).join(WorkflowRun, WorkflowRun.id == StepRun.run_id)
        return await self._after(stmt, StepRun.finished_at, StepRun.id, mark, until, limit)

    async def calls(self, mark: Mark | None, until: datetime, limit: int) -> list[tuple[Any, ...]]:
        """(id, at, tenant_id, partner_id, capability, outcome) of connector calls since the mark."""
        stmt = select(  # andon: unscoped-ok (usage collector, metering mode)
            ConnectorCall.id,
            ConnectorCall.created_at,
            ConnectorCall.tenant_id,
            Customer.partner_id,
            ConnectorCall.capability,
            ConnectorCall.outcome,
        ).join(Customer, Customer.id == ConnectorCall.tenant_id)
        return await self._after(stmt, ConnectorCall.created_at, ConnectorCall.id, mark, until, limit)

    async def gauges(self) -> list[tuple[uuid.UUID, uuid.UUID, int, int]]:
        """(tenant_id, partner_id, assets, seats) for every customer, counted in the database. A seat is
        a user who may sign in, or has been invited to."""
        assets = (
            select(func.count())  # andon: unscoped-ok (usage collector, metering mode)
            .where(Asset.tenant_id == Customer.id)
            .scalar_subquery()
        )
        seats = (
            select(func.count())  # andon: unscoped-ok (usage collector, metering mode)
            .where(User.tenant_id == Customer.id, User.status != "disabled")
            .scalar_subquery()
        )
        stmt = select(Customer.id, Customer.partner_id, assets, seats)  # andon: unscoped-ok (usage collector)
        return [(t, p, int(a), int(s)) for t, p, a, s in (await self.session.execute(stmt)).all()]

    async def append(self, rows: Sequence[dict[str, Any]]) -> int:
        """Inserts the records not seen before, each in its own tenant; how many were new."""
        return await _insert_new(self.session, rows)


class PartnerUsageRepository:
    """One partner's usage across all its customers in one grouped query per aggregation: the period
    close reads every customer at once instead of a round of queries per customer. On PostgreSQL the
    read policy opens these rows to the partner (outside any tenant) and to the operator."""

    def __init__(self, session: AsyncSession, partner_id: uuid.UUID) -> None:
        self.session = session
        self.partner_id = partner_id

    def _in(self, period: str, meter: str | None = None) -> Select[Any]:
        where = [UsageRecord.partner_id == self.partner_id, UsageRecord.period == period]
        if meter is not None:
            where.append(UsageRecord.meter == meter)
        return select().where(*where)

    async def totals(self, period: str) -> list[tuple[uuid.UUID, str, int, int, int]]:
        """(tenant, meter, sum, count, max) per customer and meter in the period."""
        stmt = (
            self._in(period)
            .add_columns(
                UsageRecord.tenant_id,
                UsageRecord.meter,
                func.sum(UsageRecord.quantity),
                func.count(),
                func.max(UsageRecord.quantity),
            )
            .group_by(UsageRecord.tenant_id, UsageRecord.meter)
        )
        rows = (await self.session.execute(stmt)).all()
        return [(t, m, int(s), int(c), int(x)) for t, m, s, c, x in rows]

    async def last_values(self, period: str, meters: Sequence[str]) -> dict[tuple[uuid.UUID, str], int]:
        """Each customer's latest value of each gauge meter in the period (ties: the larger value)."""
        if not meters:
            return {}
        ranked = (
            self._in(period)
            .where(UsageRecord.meter.in_(meters))
            .add_columns(
                UsageRecord.tenant_id,
                UsageRecord.meter,
                UsageRecord.quantity,
                func.row_number()
                .over(
                    partition_by=(UsageRecord.tenant_id, UsageRecord.meter),
                    order_by=(UsageRecord.occurred_at.desc(), UsageRecord.quantity.desc()),
                )
                .label("rank"),
            )
            .subquery()
        )
        stmt = select(ranked.c.tenant_id, ranked.c.meter, ranked.c.quantity).where(ranked.c.rank == 1)
        return {(t, m): int(v) for t, m, v in (await self.session.execute(stmt)).all()}

    async def distinct_values(self, period: str, meter: str, dimension: str) -> dict[uuid.UUID, int]:
        """Each customer's count of distinct values of a dimension for a ``unique`` meter."""
        value = UsageRecord.dimensions[dimension].as_string()
        stmt = (
            self._in(period, meter)
            .add_columns(UsageRecord.tenant_id, func.count(func.distinct(value)))
            .group_by(UsageRecord.tenant_id)
        )
        return {t: int(n) for t, n in (await self.session.execute(stmt)).all()}
