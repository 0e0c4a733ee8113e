"""The customer's API keys: machines (gateways, integrations) acting with chosen roles. A key's secret
is on one page only, the answer to creating it; after that the key is known by its prefix."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Response, Template

from andon.frontend.customer.console import (
    PAGE_SIZE,
    ROLE_TITLES,
    CustomerConsoleController,
    customer_node,
    first_row,
    pager,
    read_role_form,
    refused,
    role_form_page,
    service_refused,
)
from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.platform.auth.rbac import P
from andon.platform.auth.schemas import ApiKeyCreate
from andon.platform.auth.service import ApiKeyService
from andon.platform.http.errors import AndonError
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal

KEY_FIELDS = ("name", "expires_on")
NEW_FORM = "customer/api_key_new.html"


def _keys(db_session: DbSession, principal: Principal, tenant: TenantContext) -> ApiKeyService:
    return ApiKeyService(db_session, principal, customer_node(tenant))


def _expiry(raw: str) -> datetime | None:
    """A key expires at the start of the chosen day, UTC: the form asks for a date, not a time of day."""
    if not raw:
        return None
    return datetime.combine(date.fromisoformat(raw), time.min, tzinfo=UTC)


KEY_STATES = ("active", "expired", "revoked")


class CustomerApiKeysPageController(CustomerConsoleController):
    path = "/admin/api-keys"

    @get("/", opt={"permission": P.API_KEYS_READ})
    async def keys(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        offset: FromQuery[int] = 0,
        q: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
    ) -> Template:
        offset = first_row(offset)
        q = (q or "").strip()[:200] or None
        chosen = status if status in KEY_STATES else None
        rows, total = await _keys(db_session, principal, tenant).list(limit=PAGE_SIZE, offset=offset, q=q, state=chosen)
        return page(
            "customer/api_keys.html",
            principal=principal,
            keys=rows,
            total=total,
            now=datetime.now(UTC),
            q=q,
            chosen=chosen,
            statuses=KEY_STATES,
            **pager(offset, q=q, status=chosen),
        )

    @get("/new", opt={"permission": P.API_KEYS_WRITE})
    async def new_key(self, principal: Caller) -> Template:
        return role_form_page(NEW_FORM, principal, {}, [])

    @post("/new", opt={"permission": P.API_KEYS_WRITE})
    async def issue(self, db_session: DbSession, principal: Caller, tenant: Tenant, data: Form) -> Template:
        values, chosen, errors = read_role_form(data, KEY_FIELDS, required=("name",))
        try:
            expires_at = _expiry(values["expires_on"])
        except ValueError:
            errors["expires_on"] = "not a date (YYYY-MM-DD)"
        if errors:
            return role_form_page(NEW_FORM, principal, values, chosen, **refused(errors))
        try:
            create = msgspec.convert({"name": values["name"], "roles": chosen}, ApiKeyCreate)
            create.expires_at = expires_at
            key, plaintext = await _keys(db_session, principal, tenant).issue(create)
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await service_refused(db_session, principal, exc, {"expires_at": "expires_on"})
            return role_form_page(NEW_FORM, principal, values, chosen, **problems)
        # Not a redirect: the secret must not travel in an address (history, logs), and this answer
        # is the only one that carries it; no-store keeps it out of the browser's cache too.
        response = page("customer/api_key_issued.html", status=201, principal=principal, key=key, secret=plaintext)
        response.headers["Cache-Control"] = "no-store"
        return response

    @get("/{key_id:uuid}", opt={"permission": P.API_KEYS_READ})
    async def key(self, db_session: DbSession, principal: Caller, tenant: Tenant, key_id: PathId) -> Template:
        key = await _keys(db_session, principal, tenant).get(key_id)
        return page("customer/api_key.html", principal=principal, key=key, titles=ROLE_TITLES, now=datetime.now(UTC))

    @post("/{key_id:uuid}/revoke", opt={"permission": P.API_KEYS_WRITE})
    async def revoke(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, key_id: PathId
    ) -> Response[Any]:
        key = await _keys(db_session, principal, tenant).revoke(key_id)
        return redirect_with_notice(
            state.settings, "/admin/api-keys", f"Revoked {key.name} ({key.prefix}…): it no longer works."
        )
