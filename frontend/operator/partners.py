"""The operator's partners: find one, create one (with its first administrator invited), suspend or
reactivate one. What is inside the partners' customers stays out of reach (the services refuse it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Response, Template

from andon.frontend.flash import redirect_with_notice
from andon.frontend.operator.access import operator_only
from andon.frontend.pages import Form, page
from andon.platform.auth.rbac import P
from andon.platform.db.scope import discard_changes
from andon.platform.http.errors import AndonError
from andon.platform.http.params import Caller, DbSession, PathId
from andon.platform.identity.schemas import GrantIn, UserCreate
from andon.platform.identity.service import UserAdmin
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.branding.service import BrandingService, email_brand
from andon.tenants.orgs.models import Partner
from andon.tenants.orgs.schemas import ORG_STATUSES, PartnerCreate, PartnerUpdate
from andon.tenants.orgs.service import PartnerService

PAGE_SIZE = 25
MAX_SEARCH = 200


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    required: bool = True
    type: str = "text"
    hint: str = ""


NEW_PARTNER_FIELDS = (
    Field("name", "Partner name"),
    Field("slug", "Short name", hint="Lower-case letters, digits and hyphens; it names the partner in addresses."),
    Field("admin_name", "First administrator's name", required=False),
    Field(
        "admin_email",
        "First administrator's e-mail",
        required=False,
        type="email",
        hint="They get an invitation to set a password. Leave both empty to invite someone later.",
    ),
)
# Validation messages name schema and service fields; the form's own names differ for the invitation.
_FORM_NAMES = {"email": "admin_email", "display_name": "admin_name"}


def _listing_url(q: str | None, status: str | None, offset: int) -> str:
    params = {k: v for k, v in (("q", q), ("status", status)) if v}
    if offset:
        params["offset"] = str(offset)
    return "/operator/partners" + (f"?{urlencode(params)}" if params else "")


def _field_errors(exc: AndonError) -> dict[str, str]:
    errors = exc.extra.get("errors", []) if isinstance(exc.extra, dict) else []
    return {
        _FORM_NAMES.get(str(e.get("field")), str(e.get("field"))): str(e.get("message"))
        for e in errors
        if isinstance(e, dict)
    }


def _schema_error(exc: msgspec.ValidationError) -> AndonError:
    """msgspec says ``Expected `str` matching regex ... - at `$.slug```; keep the message, name the field."""
    message, _, where = str(exc).partition(" - at ")
    field = where.strip("`").removeprefix("$.").split(".")[0].split("[")[0]
    return AndonError(message, extra={"errors": [{"field": field, "message": message}]})


def _form_page(principal: Principal, values: dict[str, str], errors: dict[str, str], error: str) -> Template:
    return page(
        "operator/partner_new.html",
        status=422,
        principal=principal,
        fields=NEW_PARTNER_FIELDS,
        values=values,
        errors=errors,
        error=error,
    )


def _missing(values: dict[str, str]) -> dict[str, str]:
    errors = {f.name: "required" for f in NEW_PARTNER_FIELDS if f.required and not values[f.name]}
    # The invitation needs both or neither; half of it is a typing slip, not a choice.
    if values["admin_email"] and not values["admin_name"]:
        errors["admin_name"] = "needed to invite the administrator"
    if values["admin_name"] and not values["admin_email"]:
        errors["admin_email"] = "needed to invite the administrator"
    return errors


class OperatorPartnersController(Controller):
    path = "/operator/partners"
    tags = ["Operator console"]
    include_in_schema = False
    guards = [operator_only]

    @get("/", opt={"permission": P.PARTNERS_READ})
    async def partners(
        self,
        db_session: DbSession,
        principal: Caller,
        q: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        offset: FromQuery[int] = 0,
    ) -> Template:
        q = (q or "").strip()[:MAX_SEARCH] or None
        chosen = status if status in ORG_STATUSES else None
        offset = max(0, offset)
        service = PartnerService(db_session, principal)
        rows, total = await service.list(limit=PAGE_SIZE, offset=offset, q=q, status=chosen)
        counts = await service.customer_counts([p.id for p in rows])
        return page(
            "operator/partners.html",
            principal=principal,
            partners=rows,
            customers=counts,
            total=total,
            q=q,
            chosen=chosen,
            statuses=ORG_STATUSES,
            offset=offset,
            previous_url=_listing_url(q, chosen, max(offset - PAGE_SIZE, 0)) if offset > 0 else None,
            next_url=_listing_url(q, chosen, offset + PAGE_SIZE) if offset + PAGE_SIZE < total else None,
            first=offset + 1,
            last=min(offset + PAGE_SIZE, total),
        )

    @get("/new", opt={"permission": P.PARTNERS_WRITE})
    async def new_partner(self, principal: Caller) -> Template:
        return page("operator/partner_new.html", principal=principal, fields=NEW_PARTNER_FIELDS, values={}, errors={})

    @post("/new", opt={"permission": P.PARTNERS_WRITE})
    async def create_partner(self, db_session: DbSession, principal: Caller, state: State, data: Form) -> Response[Any]:
        """All or nothing: the partner and its administrator's invitation, or neither."""
        values = {f.name: data.get(f.name, "").strip() for f in NEW_PARTNER_FIELDS}
        values["slug"] = values["slug"].lower()
        missing = _missing(values)
        if missing:
            return _form_page(principal, values, missing, "Some fields need your attention.")
        try:
            partner = await PartnerService(db_session, principal).create(
                msgspec.convert({"name": values["name"], "slug": values["slug"]}, PartnerCreate)
            )
            if values["admin_email"]:
                invite = msgspec.convert(
                    {"email": values["admin_email"], "display_name": values["admin_name"]}, UserCreate
                )
                invite.grants = [GrantIn(role="partner_admin")]
                node = OrgNode(kind=OrgKind.PARTNER, partner_id=partner.id)
                brand = await email_brand(db_session, partner.id, state.settings)
                await UserAdmin(db_session, principal, node, state.settings, brand).create(invite, site_ids=set())
        except (AndonError, msgspec.ValidationError) as exc:
            await discard_changes(db_session, principal)
            refusal = _schema_error(exc) if isinstance(exc, msgspec.ValidationError) else exc
            return _form_page(principal, values, _field_errors(refusal), refusal.detail)
        notice = f"Created {partner.name}."
        if values["admin_email"]:
            notice += f" The invitation to {values['admin_email']} is on its way."
        return redirect_with_notice(state.settings, f"/operator/partners/{partner.id}", notice)

    async def _detail(self, db_session: DbSession, principal: Principal, partner: Partner) -> dict[str, Any]:
        service = PartnerService(db_session, principal)
        _, hosts = await BrandingService(db_session, principal).get(partner.id)
        return {
            "principal": principal,
            "partner": partner,
            "customer_count": (await service.customer_counts([partner.id]))[partner.id],
            "hosts": hosts,
        }

    @get("/{partner_id:uuid}", opt={"permission": P.PARTNERS_READ})
    async def partner(self, db_session: DbSession, principal: Caller, partner_id: PathId) -> Template:
        partner = await PartnerService(db_session, principal).get(partner_id)
        return page("operator/partner.html", **await self._detail(db_session, principal, partner))

    @get("/{partner_id:uuid}/suspend", opt={"permission": P.PARTNERS_WRITE})
    async def confirm_suspension(self, db_session: DbSession, principal: Caller, partner_id: PathId) -> Template:
        """A step to stop and read what suspension does, since it locks out everyone below the partner."""
        partner = await PartnerService(db_session, principal).get(partner_id)
        return page("operator/partner_suspend.html", **await self._detail(db_session, principal, partner))

    @post("/{partner_id:uuid}/suspend", opt={"permission": P.PARTNERS_WRITE})
    async def suspend(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId
    ) -> Response[Any]:
        return await self._set_status(db_session, principal, state, partner_id, "suspended")

    @post("/{partner_id:uuid}/reactivate", opt={"permission": P.PARTNERS_WRITE})
    async def reactivate(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId
    ) -> Response[Any]:
        return await self._set_status(db_session, principal, state, partner_id, "active")

    async def _set_status(
        self, db_session: DbSession, principal: Principal, state: State, partner_id: Any, status: str
    ) -> Response[Any]:
        service = PartnerService(db_session, principal)
        partner = await service.get(partner_id)
        path = f"/operator/partners/{partner.id}"
        if partner.status == status:
            # A second click (or a stale tab) changes nothing and writes no audit entry.
            return redirect_with_notice(state.settings, path, f"{partner.name} is already {status}.")
        await service.update(partner.id, PartnerUpdate(status=status))
        message = (
            f"Suspended {partner.name}: its staff and its customers can no longer sign in or use their keys."
            if status == "suspended"
            else f"Reactivated {partner.name}: its staff and its active customers have their access back."
        )
        return redirect_with_notice(state.settings, path, message)
