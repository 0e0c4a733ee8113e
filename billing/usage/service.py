"""Recording usage and reading it back per period, each meter by its own aggregation."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.usage.meters import METERS, landing
from andon.billing.usage.repository import UsageRepository
from andon.platform.db.ids import new_id
from andon.platform.db.types import utcnow
from andon.platform.http.errors import field_error
from andon.platform.tenancy.context import TenantContext


@dataclass(frozen=True, slots=True)
class Usage:
    """One metered fact as an emitter states it."""

    meter: str
    quantity: int
    # Chosen by the emitter from what it metered ("run:<id>:started"): the same fact, the same key.
    idempotency_key: str
    occurred_at: datetime
    dimensions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MeterTotal:
    meter: str
    title: str
    unit: str
    aggregation: str
    quantity: int
    records: int


def usage_row(item: Usage, partner_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The record of one fact, in the period it lands in (late, past the grace window, in this one)."""
    period, late = landing(item.occurred_at, now)
    return {
        "id": new_id(),
        "partner_id": partner_id,
        "meter": item.meter,
        "quantity": item.quantity,
        "occurred_at": item.occurred_at,
        "recorded_at": now,
        "period": period,
        "late": late,
        "idempotency_key": item.idempotency_key[:200],
        "dimensions": dict(item.dimensions),
        "created_at": now,
        "updated_at": now,
    }


class UsageService:
    def __init__(self, session: AsyncSession, tenant: TenantContext) -> None:
        self.session = session
        self.tenant = tenant
        self.repo = UsageRepository(session, tenant)

    async def record(self, usage: Sequence[Usage], *, now: datetime | None = None) -> int:
        """Appends the usage not recorded before; how many records were new."""
        now = now or utcnow()
        assert self.tenant.partner_id is not None
        rows: list[dict[str, Any]] = []
        for index, item in enumerate(usage):
            if item.meter not in METERS:
                raise field_error(f"usage[{index}].meter", f"no meter '{item.meter}'")
            if item.quantity < 0:
                raise field_error(f"usage[{index}].quantity", "usage is never negative (credits are documents)")
            rows.append(usage_row(item, self.tenant.partner_id, now))
        return await self.repo.add_many(rows)

    async def totals(self, period: str) -> list[MeterTotal]:
        """Each meter's quantity for the period, by its aggregation."""
        sums = {m: (s, c, x) for m, s, c, x in await self.repo.totals(period)}
        gauges = [key for key in sums if key in METERS and METERS[key].aggregation == "last"]
        lasts = await self.repo.last_values(period, gauges)
        found: list[MeterTotal] = []
        for key, (total, count, largest) in sorted(sums.items()):
            meter = METERS.get(key)
            if meter is None:  # pragma: no cover - record() refuses unknown meters
                continue
            quantity = {
                "sum": total,
                "count": count,
                "max": largest,
                "last": lasts.get(key, 0),
            }.get(meter.aggregation)
            if quantity is None:  # unique
                assert meter.dimension is not None
                quantity = await self.repo.distinct_values(period, key, meter.dimension)
            found.append(MeterTotal(key, meter.title, meter.unit, meter.aggregation, quantity, count))
        return found

    async def breakdown(self, period: str, meter: str, dimension: str) -> list[tuple[str | None, int]]:
        if meter not in METERS:
            raise field_error("meter", f"no meter '{meter}'")
        return await self.repo.by_dimension(period, meter, dimension)

    async def late(self, period: str) -> int:
        return await self.repo.late_count(period)
