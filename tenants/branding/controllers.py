"""A partner's brand: read, change (with a dry run for live previews), upload a logo; and the public
logo file itself."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, put
from litestar.datastructures import State
from litestar.params import JSONBody

from andon.platform.auth.rbac import P
from andon.platform.db.after_commit import after_commit
from andon.platform.http.errors import NotFoundError
from andon.platform.http.params import Caller, DbSession, Flag, PathId
from andon.tenants.branding.schemas import BrandRead, BrandUpdate
from andon.tenants.branding.service import BrandingService, brand_read, logo_png


class BrandingController(Controller):
    path = "/api/v1/partners/{partner_id:uuid}/branding"
    tags = ["Branding"]

    @get("/", opt={"permission": P.PARTNERS_READ})
    async def get_brand(self, db_session: DbSession, principal: Caller, partner_id: PathId) -> BrandRead:
        brand, hosts = await BrandingService(db_session, principal).get(partner_id)
        return brand_read(brand, hosts, partner_id)

    @put("/", opt={"permission": P.BRANDING_WRITE}, description="With dry_run=true: validate and preview only.")
    async def update_brand(
        self,
        db_session: DbSession,
        principal: Caller,
        partner_id: PathId,
        data: JSONBody[BrandUpdate],
        state: State,
        dry_run: Flag = False,
    ) -> BrandRead:
        brand, hosts = await BrandingService(db_session, principal).update(partner_id, data, dry_run=dry_run)
        if not dry_run:
            after_commit(db_session, state.brand_for_host.forget)
        return brand_read(brand, hosts, partner_id)

    @put("/logo", opt={"permission": P.BRANDING_WRITE}, description="Body: the image (PNG, JPEG or WebP).")
    async def upload_logo(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        principal: Caller,
        partner_id: PathId,
        state: State,
    ) -> BrandRead:
        service = BrandingService(db_session, principal)
        await service.set_logo(partner_id, await request.body())
        after_commit(db_session, state.brand_for_host.forget)
        brand, hosts = await service.get(partner_id)
        return brand_read(brand, hosts, partner_id)


class PublicLogoController(Controller):
    path = "/brand"
    include_in_schema = False

    @get("/{partner_id:uuid}/logo.png", opt={"public": True})
    async def logo(self, db_session: DbSession, partner_id: PathId) -> Response[bytes]:
        data = await logo_png(db_session, partner_id)
        if data is None:
            raise NotFoundError("no logo")
        return Response(data, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})
