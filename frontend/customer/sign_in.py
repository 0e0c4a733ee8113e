"""How the customer's people sign in: its OIDC identity providers. The client secret goes in and is
never shown again; leaving its field empty when editing keeps the one stored."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.response import Response, Template

from andon.frontend.customer.console import (
    CustomerConsoleController,
    customer_node,
    form_page,
    missing,
    refused,
    service_refused,
    values_of,
)
from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.platform.auth.rbac import P
from andon.platform.http.errors import AndonError
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.platform.identity.models import IdentityProvider
from andon.platform.identity.schemas import IdentityProviderCreate, IdentityProviderUpdate
from andon.platform.identity.service import CALLBACK_PATH, IdpAdmin
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal

NEW_FIELDS = ("name", "issuer", "client_id", "client_secret", "scopes", "email_domains")
EDIT_FIELDS = ("name", "client_secret", "scopes", "email_domains")
DEFAULT_SCOPES = "openid email profile"
# The service reports a claimed domain under a combined name; the form has only the domains field.
RENAME = {"email_domains/hosts/api_audience": "email_domains"}


def _idps(db_session: DbSession, principal: Principal, tenant: TenantContext, state: State) -> IdpAdmin:
    return IdpAdmin(db_session, principal, customer_node(tenant), state.secretbox)


def _domains(raw: str) -> list[str]:
    return [d.strip().lower() for d in raw.replace("\n", ",").split(",") if d.strip()]


def _values(idp: IdentityProvider) -> dict[str, str]:
    """What an edit form starts with; the secret's field always starts empty."""
    return {"name": idp.name, "scopes": idp.scopes, "email_domains": ", ".join(idp.email_domains)}


def _redirect_uri(state: State) -> str:
    return str(state.settings.http.base_url).rstrip("/") + CALLBACK_PATH


class CustomerSignInPageController(CustomerConsoleController):
    path = "/admin/sign-in"

    @get("/", opt={"permission": P.IDENTITY_READ})
    async def providers(self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State) -> Template:
        rows = await _idps(db_session, principal, tenant, state).list()
        return page("customer/sign_in.html", principal=principal, providers=rows, redirect_uri=_redirect_uri(state))

    def _new_form(self, principal: Principal, state: State, values: dict[str, str], **context: Any) -> Template:
        return form_page(
            "customer/idp_new.html", principal, values=values, redirect_uri=_redirect_uri(state), **context
        )

    @get("/new", opt={"permission": P.IDENTITY_WRITE})
    async def new_provider(self, principal: Caller, state: State) -> Template:
        return self._new_form(principal, state, {"scopes": DEFAULT_SCOPES})

    @post("/new", opt={"permission": P.IDENTITY_WRITE})
    async def create_provider(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, data: Form
    ) -> Response[Any]:
        values = values_of(data, NEW_FIELDS)
        # Never echo a secret back into the page, not even into the form that refused it.
        shown = {k: v for k, v in values.items() if k != "client_secret"}
        errors = missing(values, ("name", "issuer", "client_id", "client_secret"))
        if errors:
            return self._new_form(principal, state, shown, **refused(errors))
        try:
            create = msgspec.convert(
                {
                    "name": values["name"],
                    "issuer": values["issuer"],
                    "client_id": values["client_id"],
                    "client_secret": values["client_secret"],
                    "scopes": values["scopes"] or DEFAULT_SCOPES,
                    "email_domains": _domains(values["email_domains"]),
                },
                IdentityProviderCreate,
            )
            idp = await _idps(db_session, principal, tenant, state).create(create)
        except (AndonError, msgspec.ValidationError) as exc:
            return self._new_form(principal, state, shown, **await service_refused(db_session, principal, exc, RENAME))
        return redirect_with_notice(
            state.settings, f"/admin/sign-in/{idp.id}", f"Added {idp.name}. People of its domains now sign in there."
        )

    async def _detail(
        self,
        db_session: DbSession,
        principal: Principal,
        tenant: TenantContext,
        state: State,
        idp_id: uuid.UUID,
        values: dict[str, str] | None = None,
        **context: Any,
    ) -> Template:
        idp = await _idps(db_session, principal, tenant, state).get(idp_id)
        return form_page(
            "customer/idp.html",
            principal,
            idp=idp,
            values=values if values is not None else _values(idp),
            redirect_uri=_redirect_uri(state),
            **context,
        )

    @get("/{idp_id:uuid}", opt={"permission": P.IDENTITY_READ})
    async def provider(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, idp_id: PathId
    ) -> Template:
        return await self._detail(db_session, principal, tenant, state, idp_id)

    @post("/{idp_id:uuid}", opt={"permission": P.IDENTITY_WRITE})
    async def update_provider(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, idp_id: PathId, data: Form
    ) -> Response[Any]:
        values = values_of(data, EDIT_FIELDS)
        shown = {k: v for k, v in values.items() if k != "client_secret"}
        idps = _idps(db_session, principal, tenant, state)
        await idps.get(idp_id)
        errors = missing(values, ("name",))
        if errors:
            return await self._detail(db_session, principal, tenant, state, idp_id, shown, **refused(errors))
        raw: dict[str, Any] = {
            "name": values["name"],
            "scopes": values["scopes"] or DEFAULT_SCOPES,
            "email_domains": _domains(values["email_domains"]),
            "enabled": data.get("enabled") == "on",
        }
        if values["client_secret"]:
            raw["client_secret"] = values["client_secret"]
        try:
            idp = await idps.update(idp_id, msgspec.convert(raw, IdentityProviderUpdate))
        except (AndonError, msgspec.ValidationError) as exc:
            if isinstance(exc, AndonError) and exc.status_code == 404:
                raise
            problems = await service_refused(db_session, principal, exc, RENAME)
            return await self._detail(db_session, principal, tenant, state, idp_id, shown, **problems)
        return redirect_with_notice(state.settings, f"/admin/sign-in/{idp.id}", "Saved.")

    @post("/{idp_id:uuid}/delete", opt={"permission": P.IDENTITY_WRITE})
    async def delete_provider(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, idp_id: PathId
    ) -> Response[Any]:
        idps = _idps(db_session, principal, tenant, state)
        name = (await idps.get(idp_id)).name
        await idps.delete(idp_id)
        return redirect_with_notice(
            state.settings, "/admin/sign-in", f"Removed {name}; people who signed in with it were signed out."
        )
