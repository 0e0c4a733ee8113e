"""The customer's outbound connections: how workflows reach the customer's own systems (Slack, Teams,
e-mail, REST APIs, signed webhooks). Every act goes through ``OutboundConnectionAdmin``, which checks,
seals and audits.

A connection's settings form is drawn from its connector type's JSON Schema (``config_fields``, by
``frontend/schema_form.py``): a string is a text box, an integer a number box, a boolean a checkbox, an
enum a chooser, a map of strings (``headers``) a "Name: value" text area. Secrets are write-only: a
password box that is never filled in, not even on the form that refused it, and afterwards only "set"
or "not set"."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template

from andon.connectors.outbound.catalogue import CONNECTOR_TYPES
from andon.connectors.outbound.models import OutboundConnection
from andon.connectors.outbound.schemas import CheckResult, CheckStep, OutboundCreate, OutboundUpdate
from andon.connectors.outbound.service import OutboundConnectionAdmin
from andon.connectors.outbound.types import ConnectorType, SecretField
from andon.frontend.customer.console import (
    PAGE_SIZE,
    CustomerConsoleController,
    first_row,
    form_page,
    missing,
    pager,
    refused,
    service_refused,
    values_of,
)
from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.frontend.schema_form import SchemaField, as_text, read_fields, schema_fields, whole
from andon.platform.auth.rbac import P
from andon.platform.http.errors import AndonError, NotFoundError
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal

OUTBOUND_PATH = "/admin/outbound"
LIST = "customer/outbound_list.html"
TYPES = "customer/outbound_types.html"
NEW_FORM = "customer/outbound_new.html"
DETAIL = "customer/outbound.html"
DELETE = "customer/outbound_delete.html"

CONFIG_FIELD = "config-"
WRITE_ONLY_FIELD = "secret-"
COMMON_FIELDS = ("key", "name", "timeout_seconds", "rate_per_second")
SWITCHES = ("enabled", "relay_target")
DEFAULTS = {"timeout_seconds": "10", "rate_per_second": "10", "enabled": "on", "relay_target": ""}
# The latest calls the connection's page shows.
RECENT_CALLS = 25


def config_fields(kind: ConnectorType) -> tuple[SchemaField, ...]:
    """A connector type's settings as form controls, in the order its config struct declares them."""
    return schema_fields(kind.config_schema(), CONFIG_FIELD)


def _read_secrets(kind: ConnectorType, data: Mapping[str, str]) -> dict[str, str]:
    """The secrets typed in (an empty box keeps the one stored); never put back into a page."""
    typed = {s.name: str(data.get(WRITE_ONLY_FIELD + s.name, "")).strip() for s in kind.secrets}
    return {name: value for name, value in typed.items() if value}


def _read_common(data: Mapping[str, str], names: tuple[str, ...]) -> tuple[dict[str, str], dict[str, Any]]:
    """The common fields as typed, and as the service takes them."""
    values = values_of(data, names)
    for switch in SWITCHES:
        values[switch] = "on" if data.get(switch) == "on" else ""
    raw: dict[str, Any] = {n: values[n] for n in names if n in ("key", "name")}
    raw |= {s: values[s] == "on" for s in SWITCHES}
    return values, raw


_MESSAGES = (
    (re.compile(r"^Expected `str` matching regex '\^https\?://"), "a web address starting with https://"),
    (re.compile(r"^Expected `str` matching regex"), "not in the expected format"),
    (re.compile(r"^Expected `int` >= (-?\d+)"), "at least {0}"),
    (re.compile(r"^Expected `int` <= (-?\d+)"), "at most {0}"),
    (re.compile(r"^Expected `str` of length <= (\d+)"), "at most {0} characters"),
    (re.compile(r"^Expected `str` of length >= 1"), "required"),
    (re.compile(r"^Expected `int`, got `str`"), "a whole number"),
)


def plain(message: str) -> str:
    """A validation message in words, without the JSON path msgspec adds."""
    message = message.removeprefix("config: ").split(" - at `$", 1)[0]
    for pattern, words in _MESSAGES:
        match = pattern.match(message)
        if match:
            return words.format(*match.groups())
    return message


def _rename(kind: ConnectorType) -> dict[str, str]:
    """The service's field names (``config.base_url``, ``secrets.token``) as the form's."""
    names = {f"config.{f.key}": f.name for f in config_fields(kind)}
    return names | {f"secrets.{s.name}": WRITE_ONLY_FIELD + s.name for s in kind.secrets}


async def _service_refused(
    db_session: DbSession, principal: Principal, kind: ConnectorType, exc: AndonError | msgspec.ValidationError
) -> dict[str, Any]:
    problems = await service_refused(db_session, principal, exc, _rename(kind))
    problems["errors"] = {k: plain(v) for k, v in problems["errors"].items()}
    return problems


def _admin(db_session: DbSession, tenant: TenantContext, state: State) -> OutboundConnectionAdmin:
    return OutboundConnectionAdmin(db_session, tenant, state.outbound)


def _kind(type_key: str) -> ConnectorType:
    kind = CONNECTOR_TYPES.get(type_key)
    if kind is None:
        raise NotFoundError(f"connector type {type_key} not found")
    return kind


def _stored(connection: OutboundConnection, fields: tuple[SchemaField, ...]) -> dict[str, str]:
    """What the edit form starts with."""
    values = {n: str(getattr(connection, n)) for n in COMMON_FIELDS}
    values |= {s: "on" if getattr(connection, s) else "" for s in SWITCHES}
    config = connection.config or {}
    return values | {f.name: as_text(config.get(f.key), f.widget) if f.key in config else f.default for f in fields}


def always_needed(secret: SecretField) -> bool:
    """Whether a secret is needed whatever the settings (asked of its rule without any settings)."""
    try:
        return bool(secret.needed_when(None))
    except Exception:  # a rule that reads the settings: needed with some of them only
        return False


def _missing_titles(admin: OutboundConnectionAdmin, connection: OutboundConnection) -> list[str]:
    """The secrets its settings need and nobody set, by their titles."""
    kind = CONNECTOR_TYPES.get(connection.type)
    if kind is None:
        return []
    titles = {s.name: s.title for s in kind.secrets}
    return [titles[name] for name in admin.missing_secrets(connection)]


def _steps(stored: list[dict[str, Any]] | None) -> list[CheckStep]:
    return [msgspec.convert(s, CheckStep) for s in stored or []]


class CustomerOutboundPageController(CustomerConsoleController):
    path = OUTBOUND_PATH

    @get("/", opt={"permission": P.CONNECTIONS_READ})
    async def connections(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, offset: FromQuery[int] = 0
    ) -> Template:
        offset = first_row(offset)
        admin = _admin(db_session, tenant, state)
        rows, total = await admin.list(limit=PAGE_SIZE, offset=offset)
        listed = [
            {
                "connection": row,
                "type_title": CONNECTOR_TYPES[row.type].title if row.type in CONNECTOR_TYPES else row.type,
                "secrets_missing": _missing_titles(admin, row),
                "circuit_open": state.outbound.breakers.is_open(row.id),
            }
            for row in rows
        ]
        return page(LIST, principal=principal, rows=listed, total=total, **pager(offset))

    @get("/new", opt={"permission": P.CONNECTIONS_WRITE})
    async def choose_type(self, principal: Caller) -> Template:
        return page(TYPES, principal=principal, types=list(CONNECTOR_TYPES.values()))

    def _new_form(self, principal: Principal, kind: ConnectorType, values: dict[str, str], **context: Any) -> Template:
        secrets = [(s, always_needed(s)) for s in kind.secrets]
        return form_page(
            NEW_FORM, principal, kind=kind, fields=config_fields(kind), values=values, secrets=secrets, **context
        )

    @get("/new/{type_key:str}", opt={"permission": P.CONNECTIONS_WRITE})
    async def new_connection(self, principal: Caller, type_key: FromPath[str]) -> Template:
        kind = _kind(type_key)
        values = dict(DEFAULTS) | {f.name: f.default for f in config_fields(kind)}
        return self._new_form(principal, kind, values)

    @post("/new/{type_key:str}", opt={"permission": P.CONNECTIONS_WRITE})
    async def create(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        type_key: FromPath[str],
        data: Form,
    ) -> Response[Any]:
        kind = _kind(type_key)
        values, raw = _read_common(data, COMMON_FIELDS)
        errors = missing(values, ("key", "name", "timeout_seconds", "rate_per_second"))
        for number in ("timeout_seconds", "rate_per_second"):
            if values[number]:
                raw[number] = whole(values[number], number, errors)
        raw |= {"type": kind.key, "config": read_fields(config_fields(kind), data, values, errors)}
        raw["secrets"] = _read_secrets(kind, data)
        if errors:
            return self._new_form(principal, kind, values, **refused(errors))
        try:
            connection = await _admin(db_session, tenant, state).create(msgspec.convert(raw, OutboundCreate))
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await _service_refused(db_session, principal, kind, exc)
            return self._new_form(principal, kind, values, **problems)
        return redirect_with_notice(state.settings, f"{OUTBOUND_PATH}/{connection.id}", f"Added {connection.name}.")

    async def _detail(
        self,
        db_session: DbSession,
        principal: Principal,
        tenant: TenantContext,
        state: State,
        connection_id: uuid.UUID,
        *,
        values: dict[str, str] | None = None,
        check: CheckResult | None = None,
        **context: Any,
    ) -> Template:
        admin = _admin(db_session, tenant, state)
        connection = await admin.get(connection_id)
        kind = CONNECTOR_TYPES.get(connection.type)
        fields = config_fields(kind) if kind else ()
        needed = kind.needed_secrets(admin.config_of(connection)) if kind else []
        held = connection.secrets_sealed or {}
        secrets = [(s, s.name in held, s.name in needed) for s in kind.secrets] if kind else []
        calls = await admin.recent_calls(connection.id, limit=RECENT_CALLS)
        return form_page(
            DETAIL,
            principal,
            connection=connection,
            kind=kind,
            fields=fields,
            config=connection.config or {},
            capabilities=[(f"{connection.key}.{c.name}", c.title) for c in kind.capabilities.values()] if kind else [],
            secrets=secrets,
            secrets_missing=_missing_titles(admin, connection),
            circuit_open=state.outbound.breakers.is_open(connection.id),
            last_check=_steps(connection.last_check),
            check=check,
            calls=calls,
            recent_calls=RECENT_CALLS,
            values=values if values is not None else _stored(connection, fields),
            **context,
        )

    @get("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_READ})
    async def connection(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, connection_id: PathId
    ) -> Template:
        return await self._detail(db_session, principal, tenant, state, connection_id)

    @post("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_WRITE})
    async def update(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        connection_id: PathId,
        data: Form,
    ) -> Response[Any]:
        admin = _admin(db_session, tenant, state)
        connection = await admin.get(connection_id)
        kind = _kind(connection.type)
        values, raw = _read_common(data, COMMON_FIELDS[1:])
        values["key"] = connection.key  # fixed at creation: workflows name it by its key
        errors = missing(values, ("name", "timeout_seconds", "rate_per_second"))
        for number in ("timeout_seconds", "rate_per_second"):
            if values[number]:
                raw[number] = whole(values[number], number, errors)
        raw["config"] = read_fields(config_fields(kind), data, values, errors)
        typed = _read_secrets(kind, data)
        if typed:
            raw["secrets"] = typed
        if errors:
            problems = refused(errors)
        else:
            try:
                await admin.update(connection_id, msgspec.convert(raw, OutboundUpdate))
            except (AndonError, msgspec.ValidationError) as exc:
                problems = await _service_refused(db_session, principal, kind, exc)
            else:
                replaced = f" Replaced: {', '.join(sorted(typed))}." if typed else ""
                return redirect_with_notice(state.settings, f"{OUTBOUND_PATH}/{connection_id}", f"Saved.{replaced}")
        return await self._detail(db_session, principal, tenant, state, connection_id, values=values, **problems)

    @post("/{connection_id:uuid}/check", opt={"permission": P.CONNECTIONS_WRITE})
    async def check(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, connection_id: PathId
    ) -> Template:
        """Not a redirect: the answer is the check's own result (it is also kept as the last check)."""
        result = await _admin(db_session, tenant, state).check(connection_id)
        return await self._detail(db_session, principal, tenant, state, connection_id, check=result)

    @get("/{connection_id:uuid}/delete", opt={"permission": P.CONNECTIONS_WRITE})
    async def confirm_delete(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, connection_id: PathId
    ) -> Template:
        connection = await _admin(db_session, tenant, state).get(connection_id)
        kind = CONNECTOR_TYPES.get(connection.type)
        capabilities = [f"{connection.key}.{c}" for c in kind.capabilities] if kind else []
        return page(DELETE, principal=principal, connection=connection, capabilities=capabilities)

    @post("/{connection_id:uuid}/delete", opt={"permission": P.CONNECTIONS_WRITE})
    async def delete(self, db_session: DbSession, tenant: Tenant, state: State, connection_id: PathId) -> Response[Any]:
        admin = _admin(db_session, tenant, state)
        connection = await admin.get(connection_id)
        name, key = connection.name, connection.key
        await admin.delete(connection_id)
        return redirect_with_notice(
            state.settings, OUTBOUND_PATH, f"Removed {name}: workflow steps that call {key} fail from now on."
        )
