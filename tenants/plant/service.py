"""Rules for the plant hierarchy: parents exist in the same tenant and site, ids stay unique,
nothing is deleted out from under its children, and every change is audited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.api.schemas import check_timezone
from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.http.errors import ConflictError, NotFoundError, field_error
from andon.platform.tenancy.context import TenantContext
from andon.tenants.plant.models import Area, Asset, Line, ShiftCalendar, Site
from andon.tenants.plant.on_duty import check_rosters
from andon.tenants.plant.repository import (
    AreaRepository,
    AssetRepository,
    LineRepository,
    PlantRepository,
    ShiftCalendarRepository,
    SiteRepository,
)

PlantNode = Site | Area | Line | Asset | ShiftCalendar


@dataclass(frozen=True)
class NodeKind:
    """What differs between sites, areas, lines, assets and calendars; the service does the rest."""

    name: str
    label: str
    repo: type[PlantRepository[Any]]
    # (child kind name, the child's column pointing at this kind)
    children: tuple[tuple[str, str], ...] = field(default_factory=tuple)


KINDS: dict[str, NodeKind] = {
    k.name: k
    for k in (
        NodeKind(
            "site",
            "site",
            SiteRepository,
            (("area", "site_id"), ("line", "site_id"), ("asset", "site_id"), ("shift_calendar", "site_id")),
        ),
        NodeKind("area", "area", AreaRepository, (("line", "area_id"),)),
        NodeKind("line", "line", LineRepository, (("asset", "line_id"),)),
        NodeKind("asset", "asset", AssetRepository),
        NodeKind("shift_calendar", "shift calendar", ShiftCalendarRepository),
    )
}


class PlantService:
    def __init__(self, session: AsyncSession, ctx: TenantContext) -> None:
        self.session = session
        self.ctx = ctx

    def repo(self, kind: str) -> PlantRepository[Any]:
        return KINDS[kind].repo(self.session, self.ctx)

    async def get(self, kind: str, node_id: uuid.UUID) -> Any:
        node = await self.repo(kind).get(node_id)
        if node is None:
            raise NotFoundError(f"{KINDS[kind].label} {node_id} not found")
        return node

    async def list(
        self,
        kind: str,
        *,
        limit: int,
        offset: int,
        q: str | None = None,
        site_id: uuid.UUID | None = None,
    ) -> tuple[Sequence[Any], int]:
        repo = self.repo(kind)
        where = []
        if q:
            where.append(repo.model.name.ilike(f"%{q}%"))
        if site_id is not None and kind != "site":
            where.append(repo.model.site_id == site_id)
        return await repo.list(*where, limit=limit, offset=offset), await repo.count(*where)

    async def site_ids(self) -> set[uuid.UUID]:
        """Every site of this customer the caller can see (for checking site-level grants)."""
        sites = await self.repo("site").list(limit=10_000)
        return {s.id for s in sites}

    async def _parent(self, kind: str, node_id: uuid.UUID, field_name: str) -> Any:
        node = await self.repo(kind).get(node_id)
        if node is None:
            raise field_error(field_name, f"no {KINDS[kind].label} {node_id} in this customer")
        return node

    async def _check_links(self, kind: str, values: dict[str, Any], current: Any | None) -> None:
        """Parents must exist in this tenant, and a line's area or an asset's line in the same site."""
        site_id = values.get("site_id", getattr(current, "site_id", None))
        if "site_id" in values:
            await self._parent("site", values["site_id"], "site_id")
        for parent_kind, column in (("area", "area_id"), ("line", "line_id")):
            if values.get(column) is not None:
                parent = await self._parent(parent_kind, values[column], column)
                if parent.site_id != site_id:
                    raise field_error(column, f"{parent_kind} {parent.id} belongs to another site")
        if values.get("timezone") is not None:
            check_timezone(values["timezone"])
        external_id = values.get("external_id")
        if external_id is not None and await self.repo(kind).external_id_taken(
            external_id, other_than=getattr(current, "id", None)
        ):
            raise ConflictError(
                f"another {KINDS[kind].label} in this customer already has external_id '{external_id}'",
                extra={"errors": [{"field": "external_id", "message": "already in use"}]},
            )
        if kind == "shift_calendar" and values.get("shifts") is not None:
            names = [s["name"] for s in values["shifts"]]
            if len(names) != len(set(names)):
                raise field_error("shifts", "shift names must be unique within a calendar")
            await check_rosters(self.session, self.ctx, values["shifts"])

    async def create(self, kind: str, data: msgspec.Struct) -> Any:
        values = msgspec.to_builtins(data, builtin_types=(uuid.UUID,))
        if kind == "shift_calendar" and values.get("timezone") is None:
            site = await self._parent("site", values["site_id"], "site_id")
            values["timezone"] = site.timezone
        await self._check_links(kind, values, None)
        repo = self.repo(kind)
        node = await repo.add(repo.model(**values))
        await record(
            self.session,
            self.ctx.principal,
            f"{kind}.created",
            target_type=kind,
            target_id=node.id,
            after=snapshot(node),
            tenant=self.ctx,
        )
        return node

    async def update(self, kind: str, node_id: uuid.UUID, data: msgspec.Struct) -> Any:
        node = await self.get(kind, node_id)
        sent = {
            name: getattr(data, name) for name in data.__struct_fields__ if getattr(data, name) is not msgspec.UNSET
        }
        values = msgspec.to_builtins(sent, builtin_types=(uuid.UUID,))
        if "name" in values and values["name"] is None:
            raise field_error("name", "cannot be empty")
        await self._check_links(kind, values, node)
        before = snapshot(node)
        for name, value in values.items():
            setattr(node, name, value)
        await self.session.flush()
        await record(
            self.session,
            self.ctx.principal,
            f"{kind}.updated",
            target_type=kind,
            target_id=node.id,
            before=before,
            after=snapshot(node),
            tenant=self.ctx,
        )
        return node

    async def delete(self, kind: str, node_id: uuid.UUID) -> None:
        node = await self.get(kind, node_id)
        for child_kind, column in KINDS[kind].children:
            child_repo = self.repo(child_kind)
            count = await child_repo.count(getattr(child_repo.model, column) == node.id)
            if count:
                raise ConflictError(
                    f"{KINDS[kind].label} '{node.name}' still has {count} {KINDS[child_kind].label}(s); "
                    "delete or move them first"
                )
        before = snapshot(node)
        await self.repo(kind).delete(node)
        await record(
            self.session,
            self.ctx.principal,
            f"{kind}.deleted",
            target_type=kind,
            target_id=node_id,
            before=before,
            tenant=self.ctx,
        )
