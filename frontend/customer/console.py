"""What every page of the customer-admin console shares: who may open it, the customer it works in,
how a list pages, and how a refused form explains itself next to its fields."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Controller
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Template

from andon.frontend.pages import page
from andon.platform.auth.rbac import ROLES, Role
from andon.platform.db.scope import discard_changes
from andon.platform.http.errors import AndonError, PermissionDeniedError, ValidationFailedError
from andon.platform.http.params import Caller, DbSession
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.orgs.service import CustomerService

PAGE_SIZE = 25
ROLE_FIELD = "role-"
CUSTOMER_ROLES: tuple[Role, ...] = tuple(r for r in ROLES.values() if r.org_kind is OrgKind.CUSTOMER)
ROLE_TITLES = {r.name: r.title for r in CUSTOMER_ROLES}
NEEDS_ATTENTION = "Some fields need your attention."


def customer_staff_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The console is the customer's own: partner staff reach customers through their own console."""
    principal = connection.scope.get("user")
    if isinstance(principal, Principal) and principal.org_kind is not OrgKind.CUSTOMER:
        raise PermissionDeniedError("the administration pages are for the customer's own staff")


async def provide_own_tenant(db_session: DbSession, principal: Caller) -> TenantContext:
    """The caller's own customer, checked the same way as the API's ``/customers/{id}`` routes; no
    page takes a customer id from the address, so nobody can point the console at another customer."""
    if principal.customer_id is None:
        raise PermissionDeniedError("the administration pages are for the customer's own staff")
    try:
        return await CustomerService(db_session, principal).open_tenant(principal.customer_id)
    except BaseException:
        # As in ``provide_tenant``: the session's cleanup is not registered yet when this fails.
        await db_session.rollback()
        raise


OWN_TENANT = {"tenant": Provide(provide_own_tenant)}


class CustomerConsoleController(Controller):
    """A part of the console; each sets its ``path``. Pages only: the API documents the same operations."""

    tags = ["Customer console"]
    include_in_schema = False
    guards = [customer_staff_only]
    dependencies = OWN_TENANT


def customer_node(tenant: TenantContext) -> OrgNode:
    return OrgNode(kind=OrgKind.CUSTOMER, partner_id=tenant.partner_id, tenant=tenant)


def first_row(offset: int) -> int:
    """A hand-edited address may carry a negative offset; a browser should get the first page, not a 400."""
    return max(0, offset)


def listing_query(**params: str | uuid.UUID | None) -> dict[str, str]:
    """The filters a pager's links carry over, without the empty ones."""
    return {k: str(v) for k, v in params.items() if v not in (None, "")}


def pager(offset: int, **filters: str | uuid.UUID | None) -> dict[str, Any]:
    """What ``lists.pager`` in a list's template needs besides the rows."""
    return {"offset": offset, "limit": PAGE_SIZE, "params": listing_query(**filters)}


def optional_id(raw: str | None, field: str) -> uuid.UUID | None:
    """A chooser's value: empty means "none"; anything but an id is a tampered form."""
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailedError(
            f"{field}: not a valid choice", extra={"errors": [{"field": field, "message": "choose one from the list"}]}
        ) from None


def chosen_roles(data: Mapping[str, str]) -> list[str]:
    """Each role is its own checkbox (``role-<name>``), so the plain ``dict[str, str]`` form body holds them."""
    return sorted(k.removeprefix(ROLE_FIELD) for k in data if k.startswith(ROLE_FIELD))


def values_of(data: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {n: str(data.get(n, "")).strip() for n in names}


def stored_values(record: Any, names: tuple[str, ...]) -> dict[str, str]:
    """What an edit form starts with: the record's fields as the form's strings, empty for none."""
    return {n: "" if getattr(record, n) is None else str(getattr(record, n)) for n in names}


def missing(values: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {n: "required" for n in names if not values[n]}


def read_role_form(
    data: Mapping[str, str], fields: tuple[str, ...], required: tuple[str, ...]
) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """A form of fields plus role checkboxes: what was typed, the roles ticked, and what is missing
    (a person or key without a role could do nothing, so one role is required too)."""
    values, chosen = values_of(data, fields), chosen_roles(data)
    errors = missing(values, required)
    if not chosen:
        errors["roles"] = "choose at least one role"
    return values, chosen, errors


def or_none(value: str) -> str | None:
    return value or None


_PLAIN_WORDS = (
    (re.compile(r"^Expected `str` of length >= 1"), "required"),
    (re.compile(r"^Expected `str` of length >= (\d+)"), "too short"),
    (re.compile(r"^Expected `str` of length <= (\d+)"), "at most {0} characters"),
    (re.compile(r"^Expected `(array|list)` of length >= 1"), "choose at least one"),
    (re.compile(r"^Expected `str` matching regex"), "not in the expected format"),
    (re.compile(r"^Invalid UUID"), "choose one from the list"),
    (re.compile(r"^Invalid RFC3339"), "not a valid date"),
)


def _plain(message: str) -> str:
    for pattern, words in _PLAIN_WORDS:
        match = pattern.match(message)
        if match:
            return words.format(*match.groups())
    return message


def form_page(
    template: str, principal: Principal, *, status: int = 200, errors: dict[str, str] | None = None, **context: Any
) -> Template:
    """A page with a form; ``errors`` stays empty until the form comes back refused."""
    return page(template, status=status, principal=principal, errors=errors or {}, **context)


def role_form_page(
    template: str, principal: Principal, values: dict[str, str], chosen: list[str], **context: Any
) -> Template:
    return form_page(template, principal, values=values, chosen=chosen, roles=CUSTOMER_ROLES, **context)


def refused(errors: dict[str, str], error: str = NEEDS_ATTENTION) -> dict[str, Any]:
    """What a refused form's page adds to its context (for ``form_page``)."""
    return {"status": 422, "errors": errors, "error": error}


async def service_refused(
    db_session: DbSession,
    principal: Principal,
    exc: AndonError | msgspec.ValidationError,
    rename: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The service turned the form down: whatever it had written goes, and the form says why."""
    await discard_changes(db_session, principal)
    error, fields = form_problems(exc, rename)
    return refused(fields, error)


def form_problems(
    exc: AndonError | msgspec.ValidationError, rename: Mapping[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """The summary for the alert at the top and a message per form field (renamed where the service's
    field name is not the form's)."""
    rename = rename or {}
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
        message, _, where = text.partition(" - at `$.")
        field = re.split(r"[.\[`]", where, maxsplit=1)[0] if where else ""
        missing = re.match(r"^Object missing required field `([^`]+)`", text)
        if missing:
            field, message = missing.group(1), "required"
        field = rename.get(field, field)
        return "Some fields need your attention.", ({field: _plain(message)} if field else {})
    errors = exc.extra.get("errors", []) if isinstance(exc.extra, dict) else []
    fields: dict[str, str] = {}
    for e in errors:
        name = str(e.get("field", ""))
        name = rename.get(name, rename.get(name.split(".")[0], name.split(".")[0]))
        fields.setdefault(name, str(e.get("message", "")))
    return exc.detail, fields
