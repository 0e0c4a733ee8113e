"""The partner console: its customers, and onboarding one (customer, first administrator, plant)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State, UploadFile
from litestar.enums import RequestEncodingType
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body, FromQuery
from litestar.response import Response, Template

from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.platform.auth.rbac import P
from andon.platform.db.after_commit import after_commit
from andon.platform.db.scope import discard_changes
from andon.platform.db.types import utcnow
from andon.platform.http.errors import AndonError, PermissionDeniedError
from andon.platform.http.params import Caller, DbSession, PathId
from andon.platform.identity.schemas import GrantIn, UserCreate
from andon.platform.identity.service import UserAdmin
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.branding.contrast import is_hex_colour
from andon.tenants.branding.customer_mark import CustomerMarkService
from andon.tenants.branding.schemas import BrandUpdate
from andon.tenants.branding.service import Brand, BrandingService, contrast_checks, email_brand
from andon.tenants.onboarding.service import PlantImportService
from andon.tenants.orgs.schemas import ORG_STATUSES, CustomerCreate
from andon.tenants.orgs.service import CustomerService
from andon.tenants.plant.schemas import ShiftCalendarCreate
from andon.tenants.plant.service import PlantService
from andon.tenants.plant.shift_text import ShiftTextError, format_days, parse_shifts

PAGE_SIZE = 25
Upload = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    required: bool = True
    default: str = ""
    type: str = ""


NEW_CUSTOMER_FIELDS = (
    Field("name", "Customer name"),
    Field("slug", "Short name (letters, digits, hyphens; used in addresses)"),
    Field("default_timezone", "Time zone of its plants", default="UTC"),
    Field("admin_name", "Its administrator's name"),
    Field("admin_email", "Its administrator's e-mail (they get an invitation)", type="email"),
)


def partner_staff_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The whole console is for partner staff; checked before any form is read."""
    principal = connection.scope.get("user")
    if isinstance(principal, Principal) and principal.org_kind is not OrgKind.PARTNER:
        raise PermissionDeniedError("the partner console is for partner staff")


def _field_errors(exc: AndonError) -> dict[str, str]:
    errors = exc.extra.get("errors", []) if isinstance(exc.extra, dict) else []
    mapped = {}
    for e in errors:
        name = {"email": "admin_email", "display_name": "admin_name"}.get(str(e.get("field")), str(e.get("field")))
        mapped[name] = str(e.get("message"))
    return mapped


PLANT_COUNTS = (("site", "sites"), ("line", "lines"), ("asset", "assets"), ("shift_calendar", "shift calendars"))


@dataclass(frozen=True)
class Step:
    label: str
    done: bool
    hint: str


def _checklist(customer: Any, counts: dict[str, int], people: list[Any]) -> list[Step]:
    """Onboarding at a glance: what is done and what to do next."""
    signed_in = any(u.last_login_at for u in people)
    return [
        Step("Customer created", True, ""),
        Step(
            "Its administrator has signed in",
            signed_in,
            "The invitation is pending; they sign in from its link." if people else "Invite an administrator.",
        ),
        Step(
            "Partner access granted",
            customer.partner_may_act(utcnow()),
            "Its administrator turns it on; until then you see no plant data.",
        ),
        Step("Plant imported", counts.get("assets", 0) > 0, "Import sites, lines and assets from a CSV below."),
        Step("Shift calendars set", counts.get("shift calendars", 0) > 0, "Add each site's shifts below."),
    ]


class PartnerConsoleController(Controller):
    path = "/partner"
    tags = ["Partner console"]
    include_in_schema = False
    guards = [partner_staff_only]

    @get("/customers", opt={"permission": P.CUSTOMERS_READ})
    async def customers(
        self,
        db_session: DbSession,
        principal: Caller,
        q: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        offset: FromQuery[int] = 0,
    ) -> Template:
        offset = max(0, offset)
        chosen = status if status in ORG_STATUSES else None
        rows, total = await CustomerService(db_session, principal).list(
            limit=PAGE_SIZE, offset=offset, q=q or None, partner_id=None, status=chosen
        )
        return page(
            "partner/customers.html",
            principal=principal,
            customers=rows,
            total=total,
            q=q,
            chosen=chosen,
            statuses=ORG_STATUSES,
            offset=offset,
            limit=PAGE_SIZE,
        )

    @get("/customers/new", opt={"permission": P.CUSTOMERS_WRITE})
    async def new_customer(self, principal: Caller) -> Template:
        return page("partner/customer_new.html", principal=principal, fields=NEW_CUSTOMER_FIELDS, values={}, errors={})

    @post("/customers/new", opt={"permission": P.CUSTOMERS_WRITE})
    async def create_customer(
        self, db_session: DbSession, principal: Caller, state: State, data: Form
    ) -> Response[Any]:
        """All or nothing: the customer and its administrator's invitation, or neither."""
        values = {f.name: data.get(f.name, "").strip() for f in NEW_CUSTOMER_FIELDS}
        missing = {f.name: "required" for f in NEW_CUSTOMER_FIELDS if f.required and not values[f.name]}
        if missing:
            return page(
                "partner/customer_new.html",
                status=422,
                principal=principal,
                fields=NEW_CUSTOMER_FIELDS,
                values=values,
                errors=missing,
                error="Some fields need your attention.",
            )
        try:
            create = msgspec.convert(
                {"name": values["name"], "slug": values["slug"], "default_timezone": values["default_timezone"]},
                CustomerCreate,
            )
            customers = CustomerService(db_session, principal)
            customer = await customers.create(create)
            tenant = await customers.open_tenant(customer.id)
            node = OrgNode(kind=OrgKind.CUSTOMER, partner_id=tenant.partner_id, tenant=tenant)
            invite = msgspec.convert({"email": values["admin_email"], "display_name": values["admin_name"]}, UserCreate)
            invite.grants = [GrantIn(role="customer_admin")]
            brand = await email_brand(db_session, tenant.partner_id, state.settings)
            await UserAdmin(db_session, principal, node, state.settings, brand).create(invite, site_ids=set())
        except (AndonError, msgspec.ValidationError) as exc:
            await discard_changes(db_session, principal)
            if isinstance(exc, msgspec.ValidationError):
                exc = AndonError(
                    str(exc).split(" - at ")[0],
                    extra={
                        "errors": [
                            {"field": str(exc).rsplit("$.", 1)[-1].rstrip("`"), "message": str(exc).split(" - at ")[0]}
                        ]
                    },
                )
            return page(
                "partner/customer_new.html",
                status=422,
                principal=principal,
                fields=NEW_CUSTOMER_FIELDS,
                values=values,
                errors=_field_errors(exc),
                error=exc.detail,
            )
        return redirect_with_notice(
            state.settings, f"/partner/customers/{customer.id}", "Created; the invitation is on its way."
        )

    async def _detail(
        self, db_session: DbSession, principal: Principal, state: State, customer_id: Any, **context: Any
    ) -> Template:
        customers = CustomerService(db_session, principal)
        customer = await customers.get(customer_id)
        counts: dict[str, int] = {}
        calendars: list[Any] = []
        sites: list[Any] = []
        people: list[Any] = []
        mark = None
        if customer.partner_may_act(utcnow()):
            tenant = await customers.open_tenant(customer.id)
            plant = PlantService(db_session, tenant)
            for kind, label in PLANT_COUNTS:
                counts[label] = (await plant.list(kind, limit=1, offset=0))[1]
            sites = list((await plant.list("site", limit=200, offset=0))[0])
            calendars = list((await plant.list("shift_calendar", limit=50, offset=0))[0])
            node = OrgNode(kind=OrgKind.CUSTOMER, partner_id=tenant.partner_id, tenant=tenant)
            people = list(
                (await UserAdmin(db_session, principal, node, state.settings, None).list(limit=50, offset=0, q=None))[0]
            )
            mark = await CustomerMarkService(db_session, tenant).logo() is not None
        return page(
            "partner/customer.html",
            principal=principal,
            customer=customer,
            counts=counts,
            sites=sites,
            calendars=[(c, [(sh, format_days(sh["days"])) for sh in c.shifts]) for c in calendars],
            checklist=_checklist(customer, counts, people),
            has_logo=mark,
            **context,
        )

    @get("/customers/{customer_id:uuid}", opt={"permission": P.CUSTOMERS_READ})
    async def customer(self, db_session: DbSession, principal: Caller, state: State, customer_id: PathId) -> Template:
        return await self._detail(db_session, principal, state, customer_id)

    @post("/customers/{customer_id:uuid}/shift-calendars", opt={"permission": P.PLANT_WRITE})
    async def add_shift_calendar(
        self, db_session: DbSession, principal: Caller, state: State, customer_id: PathId, data: Form
    ) -> Response[Any]:
        """The wizard's shift step: one calendar per site, its shifts written one a line."""
        values = {k: data.get(k, "").strip() for k in ("site_id", "name", "shifts")}
        customers = CustomerService(db_session, principal)
        tenant = await customers.open_tenant(customer_id)
        try:
            shifts = parse_shifts(values["shifts"])
            create = msgspec.convert(
                {"site_id": values["site_id"], "name": values["name"] or "Shifts", "shifts": shifts},
                ShiftCalendarCreate,
            )
            await PlantService(db_session, tenant).create("shift_calendar", create)
        except (ShiftTextError, msgspec.ValidationError, AndonError) as exc:
            await discard_changes(db_session, principal)
            if isinstance(exc, ShiftTextError):
                errors = {"shifts": "; ".join(exc.problems)}
            elif isinstance(exc, AndonError):
                errors = _field_errors(exc) or {"shifts": exc.detail}
            else:
                errors = {"site_id" if "site_id" in str(exc) else "shifts": str(exc).split(" - at ")[0]}
            return await self._detail(
                db_session,
                principal,
                state,
                customer_id,
                status=422,
                shift_values=values,
                shift_errors=errors,
            )
        return redirect_with_notice(
            state.settings, f"/partner/customers/{customer_id}#shifts", f"Shift calendar {create.name!r} added."
        )

    @post("/customers/{customer_id:uuid}/logo", opt={"permission": P.CUSTOMERS_WRITE})
    async def customer_logo(
        self, db_session: DbSession, principal: Caller, state: State, customer_id: PathId, data: Upload
    ) -> Response[Any]:
        """Per-customer sub-branding: the customer's logo inside the partner's shell."""
        upload = data.get("logo")
        body = await upload.read() if isinstance(upload, UploadFile) else b""
        tenant = await CustomerService(db_session, principal).open_tenant(customer_id)
        try:
            await CustomerMarkService(db_session, tenant).set_logo(body)
        except AndonError as exc:
            await discard_changes(db_session, principal)
            return await self._detail(
                db_session, principal, state, customer_id, status=exc.status_code, logo_error=exc.detail
            )
        after_commit(db_session, lambda: state.customer_mark.forget(tenant.tenant_id))
        return redirect_with_notice(state.settings, f"/partner/customers/{customer_id}", "Customer logo updated.")

    @post("/customers/{customer_id:uuid}/plant", opt={"permission": P.ONBOARDING_IMPORT})
    async def import_plant(
        self, db_session: DbSession, principal: Caller, state: State, customer_id: PathId, data: Upload
    ) -> Template:
        upload = data.get("file")
        body = await upload.read() if isinstance(upload, UploadFile) else b""
        customers = CustomerService(db_session, principal)
        customer = await customers.get(customer_id)
        service = PlantImportService(db_session, await customers.open_tenant(customer.id), customer.default_timezone)
        dry_run = data.get("action") != "import"
        try:
            report = (await service.run(body, "text/csv", dry_run=dry_run)).as_dict()
        except AndonError as exc:
            await discard_changes(db_session, principal)
            report = exc.extra.get("report") or {
                "valid": False,
                "applied": False,
                "summary": {},
                "errors": exc.extra.get("errors", []),
            }
            return await self._detail(db_session, principal, state, customer_id, status=422, report=report)
        return await self._detail(db_session, principal, state, customer_id, report=report)


BRAND_FIELDS = (
    Field("product_name", "Product name"),
    Field("primary_colour", "Primary colour (header)", type="color"),
    Field("accent_colour", "Accent colour (buttons)", type="color"),
    Field("support_email", "Support e-mail", required=False, type="email"),
    Field("support_url", "Support web page (https://…)", required=False),
    Field("hosts", "Your portal's host names, comma-separated", required=False),
    Field(
        "custom_css",
        "Custom CSS (optional: typography, colours, spacing and borders; nothing that loads or moves things)",
        required=False,
        type="textarea",
    ),
)


def _brand_values(brand: Any, hosts: list[str]) -> dict[str, str]:
    return {
        "product_name": brand.product_name,
        "primary_colour": brand.primary_colour,
        "accent_colour": brand.accent_colour,
        "support_email": brand.support_email or "",
        "support_url": brand.support_url or "",
        "hosts": ", ".join(hosts),
        "custom_css": brand.custom_css or "",
    }


class PartnerBrandingPageController(Controller):
    """The brand editor: a plain form with Preview and Save; htmx refreshes the preview as you type."""

    path = "/partner/branding"
    tags = ["Partner console"]
    include_in_schema = False
    guards = [partner_staff_only]

    async def _render(
        self,
        principal: Principal,
        brand: Any,
        values: dict[str, str],
        *,
        status: int = 200,
        errors: dict[str, str] | None = None,
        error: str | None = None,
    ) -> Template:
        return page(
            "partner/branding.html",
            status=status,
            principal=principal,
            fields=BRAND_FIELDS,
            values=values,
            preview=brand,
            contrast=contrast_checks(brand.primary_colour, brand.accent_colour),
            errors=errors or {},
            error=error,
        )

    @get("/", opt={"permission": P.BRANDING_WRITE})
    async def editor(self, db_session: DbSession, principal: Caller) -> Template:
        assert principal.partner_id is not None
        brand, hosts = await BrandingService(db_session, principal).get(principal.partner_id)
        return await self._render(principal, brand, _brand_values(brand, hosts))

    @post("/", opt={"permission": P.BRANDING_WRITE})
    async def submit(self, db_session: DbSession, principal: Caller, state: State, data: Form) -> Response[Any]:
        assert principal.partner_id is not None
        service = BrandingService(db_session, principal)
        current, _ = await service.get(principal.partner_id)
        values = {f.name: data.get(f.name, "").strip() for f in BRAND_FIELDS}
        raw = {
            "product_name": values["product_name"],
            "primary_colour": values["primary_colour"],
            "accent_colour": values["accent_colour"],
            "support_email": values["support_email"] or None,
            "support_url": values["support_url"] or None,
            "hosts": [h.strip().lower() for h in values["hosts"].split(",") if h.strip()],
            "custom_css": values["custom_css"] or None,
        }
        dry_run = data.get("action") != "save"
        try:
            update = msgspec.convert(raw, BrandUpdate)
            brand, _ = await service.update(principal.partner_id, update, dry_run=dry_run)
        except msgspec.ValidationError as exc:
            field = str(exc).rsplit("$.", 1)[-1].split("[")[0].rstrip("`") if "$." in str(exc) else ""
            return await self._render(
                principal,
                current,
                values,
                status=422,
                errors={field: str(exc).split(" - at ")[0]},
                error="Some fields need your attention.",
            )
        except AndonError as exc:
            await discard_changes(db_session, principal)
            return await self._render(
                principal, _preview_of(raw, current), values, status=422, errors=_field_errors(exc), error=exc.detail
            )
        if dry_run:
            return await self._render(principal, brand, values)
        after_commit(db_session, state.brand_for_host.forget)
        return redirect_with_notice(state.settings, "/partner/branding", "Saved: your customers see the new brand now.")

    @post("/logo", opt={"permission": P.BRANDING_WRITE})
    async def logo(self, db_session: DbSession, principal: Caller, state: State, data: Upload) -> Response[Any]:
        return await self._upload(db_session, principal, state, data, "logo")

    @post("/favicon", opt={"permission": P.BRANDING_WRITE})
    async def favicon(self, db_session: DbSession, principal: Caller, state: State, data: Upload) -> Response[Any]:
        return await self._upload(db_session, principal, state, data, "favicon")

    async def _upload(
        self, db_session: DbSession, principal: Principal, state: State, data: dict[str, Any], kind: str
    ) -> Response[Any]:
        assert principal.partner_id is not None
        upload = data.get(kind)
        body = await upload.read() if isinstance(upload, UploadFile) else b""
        service = BrandingService(db_session, principal)
        try:
            if kind == "logo":
                await service.set_logo(principal.partner_id, body)
            else:
                await service.set_favicon(principal.partner_id, body)
        except AndonError as exc:
            await discard_changes(db_session, principal)
            brand, hosts = await service.get(principal.partner_id)
            return await self._render(
                principal,
                brand,
                _brand_values(brand, hosts),
                status=exc.status_code,
                errors={kind: exc.detail},
                error=exc.detail,
            )
        after_commit(db_session, state.brand_for_host.forget)
        return redirect_with_notice(state.settings, "/partner/branding", f"{kind.title()} updated.")


def _preview_of(raw: dict[str, Any], current: Any) -> Any:
    """Show what was typed when it is well formed, so the preview explains the refusal."""
    ok = all(isinstance(raw.get(k), str) and is_hex_colour(raw[k]) for k in ("primary_colour", "accent_colour"))
    if not ok:
        return current
    return Brand(
        raw["product_name"] or current.product_name, raw["primary_colour"], raw["accent_colour"], current.logo_url
    )
