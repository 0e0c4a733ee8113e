"""All SQL of usage records (tenant-scoped). Aggregation happens in the database, never by loading
records into Python."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from andon.billing.usage.models import UsageRecord
from andon.platform.db.repository import TenantRepository
from andon.platform.db.scope import is_postgres

# Rows per INSERT: well under PostgreSQL's 32,767 bind parameters at 12 columns a row.
CHUNK = 1000


class UsageRepository(TenantRepository[UsageRecord]):
    model = UsageRecord

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> int:  # type: ignore[override]
        """Inserts the records not seen before (by idempotency key); how many were new."""
        if not rows:
            return 0
        insert = pg_insert if is_postgres(self.session) else sqlite_insert
        # One statement with many parameter sets: SQLAlchemy sends them as batched multi-row INSERTs
        # ("insertmanyvalues") from one compiled statement, and RETURNING says which rows were new.
        stmt = (
            insert(UsageRecord)
            .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
            .returning(UsageRecord.id)
        )
        added = 0
        for start in range(0, len(rows), CHUNK):
            chunk = [{**row, "tenant_id": self.ctx.tenant_id} for row in rows[start : start + CHUNK]]
            added += len((await self.session.execute(stmt, chunk)).all())
        return added

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

    async def late_count(self, period: str) -> int:
        stmt = self._in(period).add_columns(func.count()).where(UsageRecord.late.is_(True))
        return int((await self.session.execute(stmt)).scalar_one())
