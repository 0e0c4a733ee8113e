"""Recording usage and reading it back per period, each meter by its own aggregation."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.usage.meters import METERS, landing
from andon.billing.usage.repository import PartnerUsageRepository, UsageRepository
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


def _unique_meters(sums: Mapping[str, object]) -> list[tuple[str, str]]:
    """(meter, dimension) of the ``unique`` meters with usage."""
    return [
        (key, meter.dimension)
        for key in sorted(sums)
        if (meter := METERS.get(key)) is not None and meter.aggregation == "unique" and meter.dimension is not None
    ]


def meter_totals(
    sums: Mapping[str, tuple[int, int, int]], lasts: Mapping[str, int], uniques: Mapping[str, int]
) -> list[MeterTotal]:
    """Each meter's quantity from its (sum, count, max), the gauges' last values and the distinct
    counts of the ``unique`` meters, by the meter's aggregation."""
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
            "unique": uniques.get(key, 0),
        }[meter.aggregation]
        found.append(MeterTotal(key, meter.title, meter.unit, meter.aggregation, quantity, count))
    return found


async def partner_totals(
    session: AsyncSession, partner_id: uuid.UUID, period: str
) -> dict[uuid.UUID, list[MeterTotal]]:
    """``UsageService.totals`` of every customer of a partner at once: one grouped query per
    aggregation for all of them (the period close), instead of a round of queries per customer."""
    repo = PartnerUsageRepository(session, partner_id)
    sums: dict[uuid.UUID, dict[str, tuple[int, int, int]]] = {}
    for tenant_id, key, total, count, largest in await repo.totals(period):
        sums.setdefault(tenant_id, {})[key] = (total, count, largest)
    present = {key for by_meter in sums.values() for key in by_meter}
    gauges = sorted(key for key in present if key in METERS and METERS[key].aggregation == "last")
    lasts: dict[uuid.UUID, dict[str, int]] = {}
    for (tenant_id, key), value in (await repo.last_values(period, gauges)).items():
        lasts.setdefault(tenant_id, {})[key] = value
    uniques: dict[uuid.UUID, dict[str, int]] = {}
    for key, dimension in _unique_meters(dict.fromkeys(present)):
        for tenant_id, value in (await repo.distinct_values(period, key, dimension)).items():
            uniques.setdefault(tenant_id, {})[key] = value
    return {
        tenant_id: meter_totals(by_meter, lasts.get(tenant_id, {}), uniques.get(tenant_id, {}))
        for tenant_id, by_meter in sums.items()
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
        uniques = {
            key: await self.repo.distinct_values(period, key, dimension) for key, dimension in _unique_meters(sums)
        }
        return meter_totals(sums, lasts, uniques)

    async def breakdown(self, period: str, meter: str, dimension: str) -> list[tuple[str | None, int]]:
        if meter not in METERS:
            raise field_error("meter", f"no meter '{meter}'")
        return await self.repo.by_dimension(period, meter, dimension)

    async def daily(self, period: str) -> dict[str, list[tuple[str, int]]]:
        """Each meter's quantity per UTC day of the period it has usage on, aggregated in SQL: a sum
        meter its day's sum, a gauge (``max``, ``last``) its day's largest value, ``unique`` the day's
        distinct values. Days are ``YYYY-MM-DD``, oldest first."""
        series: dict[str, list[tuple[str, int]]] = {}
        for day, key, total, count, largest in await self.repo.daily(period):
            meter = METERS.get(key)
            if meter is None or meter.aggregation == "unique":
                continue
            value = {"sum": total, "count": count}.get(meter.aggregation, largest)
            series.setdefault(key, []).append((day, value))
        for key, meter in METERS.items():
            if meter.aggregation == "unique" and meter.dimension is not None:
                days = await self.repo.daily_distinct(period, key, meter.dimension)
                if days:
                    series[key] = days
        return dict(sorted(series.items()))

    async def late(self, period: str) -> int:
        return await self.repo.late_count(period)
