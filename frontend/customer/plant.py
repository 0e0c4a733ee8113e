"""The customer's plant: sites, lines and assets to find (search, filter by site, pages), and sites and
assets to create and edit. Areas and shift calendars stay with the API and the CSV import."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromQuery
from litestar.response import Response, Template

from andon.frontend.customer.console import (
    PAGE_SIZE,
    CustomerConsoleController,
    first_row,
    form_page,
    optional_id,
    or_none,
    pager,
    service_refused,
    stored_values,
    values_of,
)
from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.platform.auth.rbac import P
from andon.platform.http.errors import AndonError
from andon.platform.http.params import Caller, DbSession, PathId, Search, Tenant
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal
from andon.tenants.orgs.service import CustomerService
from andon.tenants.plant import schemas as ps
from andon.tenants.plant.service import PlantService

PLANT_PATH = "/admin/plant"
SITE_FIELDS = ("name", "external_id", "timezone", "description")
ASSET_FIELDS = (
    "site_id",
    "line_id",
    "name",
    "external_id",
    "asset_type",
    "manufacturer",
    "model",
    "serial_number",
    "criticality",
)
# Choosers list at most this many; a plant beyond it is managed through the API or the CSV import.
CHOOSER_LIMIT = 1000


class Listing(NamedTuple):
    kind: str
    path: str
    plural: str


# One list page per kind of plant record, in the order of the tabs above them.
LISTINGS = (
    Listing("site", PLANT_PATH, "sites"),
    Listing("line", f"{PLANT_PATH}/lines", "lines"),
    Listing("asset", f"{PLANT_PATH}/assets", "assets"),
)


async def _all(plant: PlantService, kind: str, site_id: uuid.UUID | None = None) -> Sequence[Any]:
    return (await plant.list(kind, limit=CHOOSER_LIMIT, offset=0, site_id=site_id))[0]


async def _list_page(
    db_session: DbSession,
    principal: Principal,
    tenant: TenantContext,
    listing: Listing,
    q: str | None,
    site: str | None,
    offset: int,
) -> Template:
    kind = listing.kind
    offset = first_row(offset)
    site_id = optional_id(site, "site_id") if kind != "site" else None
    plant = PlantService(db_session, tenant)
    rows, total = await plant.list(kind, limit=PAGE_SIZE, offset=offset, q=q or None, site_id=site_id)
    sites = await _all(plant, "site") if kind != "site" else rows
    lines = await _all(plant, "line", site_id) if kind == "asset" else []
    return page(
        "customer/plant.html",
        principal=principal,
        listings=LISTINGS,
        kind=kind,
        plural=listing.plural,
        path=listing.path,
        rows=rows,
        total=total,
        q=q,
        site_id=str(site_id) if site_id else "",
        sites=sites,
        site_names={s.id: s.name for s in sites},
        site_name=next((s.name for s in sites if s.id == site_id), None),
        line_names={line.id: line.name for line in lines},
        **pager(offset, q=q, site_id=site_id),
    )


def _list_handler(listing: Listing) -> HTTPRouteHandler:
    """The kinds' list pages differ only by the kind; a site list ignores ``site_id``."""

    @get(listing.path.removeprefix(PLANT_PATH) or "/", opt={"permission": P.PLANT_READ})
    async def listing_page(
        self: CustomerConsoleController,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        q: Search = None,
        site_id: FromQuery[str | None] = None,
        offset: FromQuery[int] = 0,
    ) -> Template:
        return await _list_page(db_session, principal, tenant, listing, q, site_id, offset)

    return listing_page


def _site_fields(values: dict[str, str]) -> dict[str, Any]:
    return {
        "name": values["name"],
        "external_id": or_none(values["external_id"]),
        "timezone": values["timezone"] or "UTC",
        "description": or_none(values["description"]),
    }


def _asset_fields(values: dict[str, str]) -> dict[str, Any]:
    """All but the site, which is set once, when the asset is created."""
    return {
        "line_id": optional_id(values["line_id"], "line_id"),
        "name": values["name"],
        "external_id": or_none(values["external_id"]),
        "asset_type": or_none(values["asset_type"]),
        "manufacturer": or_none(values["manufacturer"]),
        "model": or_none(values["model"]),
        "serial_number": or_none(values["serial_number"]),
        "criticality": or_none(values["criticality"]),
    }


class CustomerPlantPageController(CustomerConsoleController):
    path = PLANT_PATH

    sites, lines, assets = (_list_handler(listing) for listing in LISTINGS)

    # Sites

    async def _site_page(
        self,
        db_session: DbSession,
        principal: Principal,
        tenant: TenantContext,
        site_id: uuid.UUID | None,
        values: dict[str, str] | None = None,
        **context: Any,
    ) -> Template:
        """A site's page, or with no ``site_id`` the form that adds one."""
        site: Any = None
        counts: dict[str, int] = {}
        if site_id is not None:
            plant = PlantService(db_session, tenant)
            site = await plant.get("site", site_id)
            counts = {
                label: (await plant.list(kind, limit=1, offset=0, site_id=site.id))[1]
                for kind, label in (("line", "lines"), ("asset", "assets"))
            }
        return form_page(
            "customer/site_form.html",
            principal,
            site=site,
            counts=counts,
            values=values if values is not None else stored_values(site, SITE_FIELDS),
            **context,
        )

    @get("/sites/new", opt={"permission": P.PLANT_WRITE})
    async def new_site(self, db_session: DbSession, principal: Caller, tenant: Tenant) -> Template:
        customer = await CustomerService(db_session, principal).get(tenant.tenant_id)
        return await self._site_page(db_session, principal, tenant, None, {"timezone": customer.default_timezone})

    @post("/sites/new", opt={"permission": P.PLANT_WRITE})
    async def create_site(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, data: Form
    ) -> Response[Any]:
        values = values_of(data, SITE_FIELDS)
        try:
            create = msgspec.convert(_site_fields(values), ps.SiteCreate)
            site = await PlantService(db_session, tenant).create("site", create)
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await service_refused(db_session, principal, exc)
            return await self._site_page(db_session, principal, tenant, None, values, **problems)
        return redirect_with_notice(state.settings, f"{PLANT_PATH}/sites/{site.id}", f"Created {site.name}.")

    @get("/sites/{site_id:uuid}", opt={"permission": P.PLANT_READ})
    async def site(self, db_session: DbSession, principal: Caller, tenant: Tenant, site_id: PathId) -> Template:
        return await self._site_page(db_session, principal, tenant, site_id)

    @post("/sites/{site_id:uuid}", opt={"permission": P.PLANT_WRITE})
    async def update_site(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, site_id: PathId, data: Form
    ) -> Response[Any]:
        values = values_of(data, SITE_FIELDS)
        plant = PlantService(db_session, tenant)
        await plant.get("site", site_id)
        try:
            site = await plant.update("site", site_id, msgspec.convert(_site_fields(values), ps.SiteUpdate))
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await service_refused(db_session, principal, exc)
            return await self._site_page(db_session, principal, tenant, site_id, values, **problems)
        return redirect_with_notice(state.settings, f"{PLANT_PATH}/sites/{site.id}", "Saved.")

    # Assets

    async def _asset_page(
        self,
        db_session: DbSession,
        principal: Principal,
        tenant: TenantContext,
        asset: Any,
        values: dict[str, str],
        **context: Any,
    ) -> Template:
        plant = PlantService(db_session, tenant)
        sites = await _all(plant, "site")
        lines = await _all(plant, "line")
        site_names = {s.id: s.name for s in sites}
        return form_page(
            "customer/asset_form.html",
            principal,
            asset=asset,
            values=values,
            site_options=[(str(s.id), s.name) for s in sites],
            line_options=[(str(line.id), f"{line.name} ({site_names.get(line.site_id, '?')})") for line in lines],
            site_names=site_names,
            **context,
        )

    @get("/assets/new", opt={"permission": P.PLANT_WRITE})
    async def new_asset(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, site_id: FromQuery[str | None] = None
    ) -> Template:
        return await self._asset_page(db_session, principal, tenant, None, {"site_id": site_id or ""})

    @post("/assets/new", opt={"permission": P.PLANT_WRITE})
    async def create_asset(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, data: Form
    ) -> Response[Any]:
        values = values_of(data, ASSET_FIELDS)
        try:
            if not values["site_id"]:
                raise AndonError(
                    "Some fields need your attention.",
                    extra={"errors": [{"field": "site_id", "message": "choose the site it stands in"}]},
                )
            fields = {"site_id": optional_id(values["site_id"], "site_id"), **_asset_fields(values)}
            asset = await PlantService(db_session, tenant).create("asset", msgspec.convert(fields, ps.AssetCreate))
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await service_refused(db_session, principal, exc)
            return await self._asset_page(db_session, principal, tenant, None, values, **problems)
        return redirect_with_notice(state.settings, f"{PLANT_PATH}/assets/{asset.id}", f"Created {asset.name}.")

    @get("/assets/{asset_id:uuid}", opt={"permission": P.PLANT_READ})
    async def asset(self, db_session: DbSession, principal: Caller, tenant: Tenant, asset_id: PathId) -> Template:
        asset = await PlantService(db_session, tenant).get("asset", asset_id)
        return await self._asset_page(db_session, principal, tenant, asset, stored_values(asset, ASSET_FIELDS))

    @post("/assets/{asset_id:uuid}", opt={"permission": P.PLANT_WRITE})
    async def update_asset(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, asset_id: PathId, data: Form
    ) -> Response[Any]:
        values = values_of(data, ASSET_FIELDS)
        plant = PlantService(db_session, tenant)
        current = await plant.get("asset", asset_id)
        # The site is fixed once an asset exists (moving one is a re-import); show the stored one back.
        values["site_id"] = str(current.site_id)
        try:
            asset = await plant.update("asset", asset_id, msgspec.convert(_asset_fields(values), ps.AssetUpdate))
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await service_refused(db_session, principal, exc)
            asset = await PlantService(db_session, tenant).get("asset", asset_id)
            return await self._asset_page(db_session, principal, tenant, asset, values, **problems)
        return redirect_with_notice(state.settings, f"{PLANT_PATH}/assets/{asset.id}", "Saved.")
