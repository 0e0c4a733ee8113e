"""REST routes for sites, areas, lines, assets and shift calendars of one customer.

The five resources share one shape, so one factory builds their controllers. Annotations here are
real objects (no ``from __future__ import annotations``) because Litestar reads them at start-up.
"""

from typing import Any

from litestar import Controller, delete, get, patch, post
from litestar.params import JSONBody

from andon.platform.api.schemas import Page, to_read
from andon.platform.auth.rbac import P
from andon.platform.http.params import DbSession, Limit, Offset, OptionalId, PathId, Search, Tenant
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY
from andon.tenants.plant import schemas as s
from andon.tenants.plant.service import PlantService


def _controller(kind: str, segment: str, tag: str, create: Any, update: Any, read: Any) -> type[Controller]:
    id_path = "/{node_id:uuid}"

    class _PlantController(Controller):
        path = f"/api/v1/customers/{{customer_id:uuid}}/{segment}"
        tags = [tag]
        dependencies = TENANT_DEPENDENCY

        @get("/", opt={"permission": P.PLANT_READ}, name=f"{kind}.list")
        async def list_nodes(
            self,
            db_session: DbSession,
            tenant: Tenant,
            limit: Limit = 50,
            offset: Offset = 0,
            q: Search = None,
            site_id: OptionalId = None,
        ) -> Page[read]:
            rows, total = await PlantService(db_session, tenant).list(
                kind, limit=limit, offset=offset, q=q, site_id=site_id
            )
            return Page(items=[to_read(r, read) for r in rows], total=total, limit=limit, offset=offset)

        @post("/", opt={"permission": P.PLANT_WRITE}, name=f"{kind}.create")
        async def create_node(self, db_session: DbSession, tenant: Tenant, data: JSONBody[create]) -> read:
            return to_read(await PlantService(db_session, tenant).create(kind, data), read)

        @get(id_path, opt={"permission": P.PLANT_READ}, name=f"{kind}.get")
        async def get_node(self, db_session: DbSession, tenant: Tenant, node_id: PathId) -> read:
            return to_read(await PlantService(db_session, tenant).get(kind, node_id), read)

        @patch(id_path, opt={"permission": P.PLANT_WRITE}, name=f"{kind}.update")
        async def update_node(
            self,
            db_session: DbSession,
            tenant: Tenant,
            node_id: PathId,
            data: JSONBody[update],
        ) -> read:
            return to_read(await PlantService(db_session, tenant).update(kind, node_id, data), read)

        @delete(id_path, opt={"permission": P.PLANT_WRITE}, name=f"{kind}.delete")
        async def delete_node(self, db_session: DbSession, tenant: Tenant, node_id: PathId) -> None:
            await PlantService(db_session, tenant).delete(kind, node_id)

    _PlantController.__name__ = f"{tag.replace(' ', '')}Controller"
    return _PlantController


PLANT_CONTROLLERS = [
    _controller("site", "sites", "Sites", s.SiteCreate, s.SiteUpdate, s.SiteRead),
    _controller("area", "areas", "Areas", s.AreaCreate, s.AreaUpdate, s.AreaRead),
    _controller("line", "lines", "Lines", s.LineCreate, s.LineUpdate, s.LineRead),
    _controller("asset", "assets", "Assets", s.AssetCreate, s.AssetUpdate, s.AssetRead),
    _controller(
        "shift_calendar",
        "shift-calendars",
        "Shift calendars",
        s.ShiftCalendarCreate,
        s.ShiftCalendarUpdate,
        s.ShiftCalendarRead,
    ),
]
