"""A partner's brand: read, change (with a dry run for live previews), upload a logo; and the public
logo file itself."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, Response, delete, get, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from andon.platform.auth.rbac import P
from andon.platform.db.after_commit import after_commit
from andon.platform.http.errors import NotFoundError
from andon.platform.http.params import Caller, DbSession, Flag, PathId, Tenant
from andon.tenants.branding.customer_mark import CustomerMarkService
from andon.tenants.branding.schemas import BrandRead, BrandUpdate
from andon.tenants.branding.service import BrandingService, brand_read, public_asset
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY


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

    @put(
        "/{image:str}",
        opt={"permission": P.BRANDING_WRITE},
        description="`logo` or `favicon`. Body: the image (PNG, JPEG or WebP); stored as a sanitised PNG "
        "(a favicon at 64 pixels).",
    )
    async def upload_image(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        principal: Caller,
        partner_id: PathId,
        image: FromPath[Literal["logo", "favicon"]],
        state: State,
    ) -> BrandRead:
        service = BrandingService(db_session, principal)
        body = await request.body()
        await (service.set_logo if image == "logo" else service.set_favicon)(partner_id, body)
        after_commit(db_session, state.brand_for_host.forget)
        brand, hosts = await service.get(partner_id)
        return brand_read(brand, hosts, partner_id)


_PUBLIC_ASSETS = {
    "logo.png": ("logo", "image/png"),
    "favicon.png": ("favicon", "image/png"),
    "custom.css": ("css", "text/css"),
}


class PublicBrandAssetController(Controller):
    """Logos, favicons and custom CSS, served to anyone: sign-in pages show them. Versioned URLs
    (``?v=``) let browsers keep them for a day."""

    path = "/brand"
    include_in_schema = False

    @get("/{partner_id:uuid}/{name:str}", opt={"public": True})
    async def asset(self, db_session: DbSession, partner_id: PathId, name: FromPath[str]) -> Response[bytes | str]:
        if name not in _PUBLIC_ASSETS:
            raise NotFoundError("no such brand file")
        kind, media_type = _PUBLIC_ASSETS[name]
        data = await public_asset(db_session, partner_id, kind)
        if data is None:
            raise NotFoundError(f"no {kind}")
        return Response(
            data,
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )


class CustomerMarkController(Controller):
    """A customer's own logo inside its partner's shell (per-customer sub-branding)."""

    path = "/api/v1/customers/{customer_id:uuid}/logo"
    tags = ["Branding"]
    dependencies = TENANT_DEPENDENCY

    @put("/", opt={"permission": P.CUSTOMERS_WRITE}, description="Body: the image (PNG, JPEG or WebP).")
    async def upload(
        self, request: Request[Any, Any, Any], db_session: DbSession, tenant: Tenant, state: State
    ) -> dict[str, str]:
        url = await CustomerMarkService(db_session, tenant).set_logo(await request.body())
        after_commit(db_session, lambda: state.customer_mark.forget(tenant.tenant_id))
        return {"logo_url": url}

    @delete("/", opt={"permission": P.CUSTOMERS_WRITE})
    async def remove(self, db_session: DbSession, tenant: Tenant, state: State) -> None:
        await CustomerMarkService(db_session, tenant).remove()
        after_commit(db_session, lambda: state.customer_mark.forget(tenant.tenant_id))


class CustomerMarkImageController(Controller):
    """The image itself, for people signed in to the customer or its partner."""

    path = "/brand/customers/{customer_id:uuid}/logo.png"
    include_in_schema = False
    dependencies = TENANT_DEPENDENCY

    @get("/", opt={"permission": P.CUSTOMERS_READ})
    async def image(self, db_session: DbSession, tenant: Tenant) -> Response[bytes]:
        data = await CustomerMarkService(db_session, tenant).logo()
        if data is None:
            raise NotFoundError("no logo")
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})
