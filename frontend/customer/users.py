"""People of the customer: who has access with which roles, inviting someone, changing their roles,
switching their access off and on again."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Response, Template

from andon.frontend.customer.console import (
    CUSTOMER_ROLES,
    PAGE_SIZE,
    ROLE_TITLES,
    CustomerConsoleController,
    chosen_roles,
    customer_node,
    first_row,
    form_page,
    pager,
    read_role_form,
    refused,
    role_form_page,
    service_refused,
)
from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.platform.auth.rbac import P
from andon.platform.http.errors import AndonError
from andon.platform.http.params import Caller, DbSession, PathId, Search, Tenant
from andon.platform.identity.schemas import GrantIn, UserCreate, UserUpdate
from andon.platform.identity.service import UserAdmin
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal
from andon.tenants.branding.service import email_brand
from andon.tenants.plant.service import PlantService

INVITE_FIELDS = ("display_name", "email")
# The service speaks of "grants"; the form's control is the group of role checkboxes.
RENAME = {"grants": "roles"}
INVITE_FORM = "customer/user_new.html"


async def _users(db_session: DbSession, principal: Principal, tenant: TenantContext, state: State) -> UserAdmin:
    brand = await email_brand(db_session, tenant.partner_id, state.settings)
    return UserAdmin(db_session, principal, customer_node(tenant), state.settings, brand)


class CustomerUsersPageController(CustomerConsoleController):
    path = "/admin/users"

    @get("/", opt={"permission": P.USERS_READ})
    async def users(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        q: Search = None,
        offset: FromQuery[int] = 0,
    ) -> Template:
        offset = first_row(offset)
        users = await _users(db_session, principal, tenant, state)
        rows, total = await users.list(limit=PAGE_SIZE, offset=offset, q=q or None)
        roles = {u.id: sorted({g.role for g in await users.grants(u.id)}) for u in rows}
        return page(
            "customer/users.html",
            principal=principal,
            users=rows,
            roles=roles,
            titles=ROLE_TITLES,
            total=total,
            q=q,
            **pager(offset, q=q),
        )

    @get("/new", opt={"permission": P.USERS_WRITE})
    async def new_user(self, principal: Caller) -> Template:
        return role_form_page(INVITE_FORM, principal, {}, [])

    @post("/new", opt={"permission": P.USERS_WRITE})
    async def invite(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, data: Form
    ) -> Response[Any]:
        """An invitation only: the person sets their own password from the e-mail."""
        values, chosen, errors = read_role_form(data, INVITE_FIELDS, required=INVITE_FIELDS)
        if errors:
            return role_form_page(INVITE_FORM, principal, values, chosen, **refused(errors))
        try:
            invite = msgspec.convert({**values, "grants": [{"role": r} for r in chosen]}, UserCreate)
            user, _ = await (await _users(db_session, principal, tenant, state)).create(invite, site_ids=set())
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await service_refused(db_session, principal, exc, RENAME)
            return role_form_page(INVITE_FORM, principal, values, chosen, **problems)
        return redirect_with_notice(state.settings, f"/admin/users/{user.id}", f"Invitation sent to {user.email}.")

    async def _detail(
        self,
        db_session: DbSession,
        principal: Principal,
        tenant: TenantContext,
        state: State,
        user_id: uuid.UUID,
        chosen: list[str] | None = None,
        **context: Any,
    ) -> Template:
        users = await _users(db_session, principal, tenant, state)
        user = await users.get(user_id)
        grants = await users.grants(user.id)
        sites = (await PlantService(db_session, tenant).list("site", limit=500, offset=0))[0]
        return form_page(
            "customer/user.html",
            principal,
            user=user,
            grants=grants,
            site_names={s.id: s.name for s in sites},
            roles=CUSTOMER_ROLES,
            titles=ROLE_TITLES,
            chosen=chosen if chosen is not None else sorted({g.role for g in grants}),
            is_me=user.id == principal.subject_id,
            **context,
        )

    @get("/{user_id:uuid}", opt={"permission": P.USERS_READ})
    async def user(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, user_id: PathId
    ) -> Template:
        return await self._detail(db_session, principal, tenant, state, user_id)

    @post("/{user_id:uuid}/roles", opt={"permission": P.USERS_WRITE})
    async def change_roles(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, user_id: PathId, data: Form
    ) -> Response[Any]:
        """Roles set here are for the whole customer; they replace any roles the person had, site-limited
        ones included (the page says so before the button)."""
        chosen = chosen_roles(data)
        users = await _users(db_session, principal, tenant, state)
        try:
            await users.replace_grants(user_id, [GrantIn(role=r) for r in chosen], site_ids=set())
        except AndonError as exc:
            if exc.status_code == 404:
                raise
            problems = await service_refused(db_session, principal, exc, RENAME)
            return await self._detail(db_session, principal, tenant, state, user_id, chosen, **problems)
        return redirect_with_notice(state.settings, f"/admin/users/{user_id}", "Roles saved.")

    @post("/{user_id:uuid}/status", opt={"permission": P.USERS_WRITE})
    async def change_status(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, user_id: PathId, data: Form
    ) -> Response[Any]:
        status = data.get("status", "")
        users = await _users(db_session, principal, tenant, state)
        user = await users.get(user_id)
        if status not in ("active", "disabled") or (status == "active" and user.status != "disabled"):
            return await self._detail(
                db_session, principal, tenant, state, user_id, **refused({}, "Choose to deactivate or reactivate.")
            )
        if user.id == principal.subject_id and status == "disabled":
            # Deactivating oneself ends one's own session mid-request and may leave no administrator.
            refusal = refused({}, "You cannot deactivate your own account; ask another administrator.")
            return await self._detail(db_session, principal, tenant, state, user_id, **refusal)
        await users.update(user.id, UserUpdate(status=status))
        notice = "Deactivated: their sessions have ended." if status == "disabled" else "Reactivated."
        return redirect_with_notice(state.settings, f"/admin/users/{user_id}", notice)
