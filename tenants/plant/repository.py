"""All SQL of the plant hierarchy; every repository is tenant-scoped by construction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement

from andon.platform.db.repository import TenantRepository
from andon.tenants.plant.models import Area, Asset, Line, ShiftCalendar, Site

N = TypeVar("N", Site, Area, Line, Asset, ShiftCalendar)
LOOKUP_CHUNK = 5_000


class PlantRepository(TenantRepository[N], Generic[N]):
    def scope(self) -> list[ColumnElement[bool]]:
        # A caller with site-level grants sees only those sites and what hangs below them.
        conditions = super().scope()
        sites = self.ctx.principal.site_ids
        if sites is not None:
            column = self.model.id if self.model is Site else self.model.site_id
            conditions.append(column.in_(sorted(sites)))
        return conditions

    async def by_external_ids(self, external_ids: Sequence[str]) -> dict[str, N]:
        if not external_ids:
            return {}
        found: dict[str, N] = {}
        wanted = list(external_ids)
        # In chunks: PostgreSQL takes at most 32,767 bound parameters in one statement.
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            stmt = self.select().where(self.model.external_id.in_(wanted[start : start + LOOKUP_CHUNK]))
            for row in (await self.session.execute(stmt)).scalars():
                if row.external_id is not None:
                    found[row.external_id] = row
        return found

    async def external_id_taken(self, external_id: str, *, other_than: uuid.UUID | None = None) -> bool:
        stmt = self.select().where(self.model.external_id == external_id)
        if other_than is not None:
            stmt = stmt.where(self.model.id != other_than)
        return (await self.session.execute(stmt.limit(1))).first() is not None


class SiteRepository(PlantRepository[Site]):
    model = Site


class AreaRepository(PlantRepository[Area]):
    model = Area


class LineRepository(PlantRepository[Line]):
    model = Line


class AssetRepository(PlantRepository[Asset]):
    model = Asset


class ShiftCalendarRepository(PlantRepository[ShiftCalendar]):
    model = ShiftCalendar
