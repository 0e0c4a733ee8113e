"""The customer's source connections: how each vendor system delivers events, what became of its recent
deliveries, and its signing secret, shown once (on the answer to creating it or rotating it) and never
again. Every act goes through ``SourceConnectionAdmin``, which checks, seals and audits.

The form is a common part (name, source, event type, on/off) and a part per kind of connection
(``KIND_FIELDS`` and the template ``customer/_connection_<kind>.html``); the pages create webhooks,
the kind the vendor pushes to, and show any kind the API created."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Response, Template

from andon.connectors.sources import verifiers
from andon.connectors.sources.models import SourceConnection
from andon.connectors.sources.schemas import ConnectionCreate, ConnectionUpdate, SecretRotate
from andon.connectors.sources.service import SourceConnectionAdmin
from andon.frontend.customer.console import (
    PAGE_SIZE,
    CustomerConsoleController,
    first_row,
    form_page,
    missing,
    or_none,
    pager,
    refused,
    service_refused,
    values_of,
)
from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.platform.auth.rbac import P
from andon.platform.events.catalogue import CATALOGUE
from andon.platform.http.errors import AndonError
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal

CONNECTIONS_PATH = "/admin/connections"
# Where vendors deliver (the public route of ``connectors/sources/controllers.py``).
HOOKS_PATH = "/hooks"
NEW_FORM = "customer/connection_new.html"
DETAIL = "customer/connection.html"
ISSUED = "customer/connection_issued.html"

COMMON_FIELDS = ("name", "source", "event_type")
# What each kind adds to the common part of the form; a kind the pages can create has an entry here
# and a template ``customer/_connection_<kind>.html`` with its fields.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("verifier", "signature_header", "signature_prefix", "digest_encoding", "tolerance_seconds"),
}
KIND_TITLES = {
    "webhook": "Webhook: the vendor pushes signed requests to an address",
    "mqtt": "MQTT: subscribed to a topic on the plant's broker",
    "rest_poll": "REST polling: fetched from the vendor's API on a schedule",
    "drop_folder": "Drop folder: files picked up from a folder",
}
VERIFIERS = (
    (verifiers.STANDARD, "Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature headers)"),
    (verifiers.HMAC_BODY, "HMAC-SHA256 of the body in a header the vendor names"),
    (verifiers.SHARED_SECRET, "The secret itself in a header the vendor names"),
)
VERIFIER_TITLES = dict(VERIFIERS)
DIGESTS = (("hex", "Hexadecimal"), ("base64", "Base64"))
EVENT_TYPES = tuple((t.name, t.title) for t in CATALOGUE.values())
OUTCOMES = ("accepted", "duplicate", "refused")
# How long the secret being replaced still verifies while the vendor switches over.
ROLLOVERS = (
    ("0", "Not at all: stop accepting it now"),
    ("3600", "1 hour"),
    ("86400", "24 hours"),
    ("604800", "7 days"),
)
DEFAULT_ROLLOVER = "86400"
TOLERANCE_HINT = "How far a delivery's timestamp may be from now, 1 to 300 seconds."


def _admin(db_session: DbSession, tenant: TenantContext, state: State) -> SourceConnectionAdmin:
    return SourceConnectionAdmin(db_session, tenant, state.secretbox)


def hook_url(request: Request[Any, Any, Any], state: State, connection: SourceConnection) -> str | None:
    """The address to give the vendor: on a partner's portal host its own (so nothing names the
    platform), else the platform's; None for kinds the vendor does not push to."""
    if connection.kind != "webhook":
        return None
    brand = getattr(request.state, "brand", None)
    host = (request.headers.get("host") or "").split(":", 1)[0]
    if brand is not None and brand.partner_id is not None and host:
        base = state.portal_url(state.settings, host)
    else:
        base = str(state.settings.http.base_url).rstrip("/")
    return f"{base}{HOOKS_PATH}/{connection.id}"


def _seconds(values: Mapping[str, str], field: str, errors: dict[str, str], message: str) -> int | str:
    """A whole number typed into a form (left as typed, with ``message`` noted, when it is not one)."""
    raw = values[field]
    if raw.isdigit():
        return int(raw)
    errors[field] = message
    return raw


def _webhook(values: Mapping[str, str], errors: dict[str, str], creating: bool) -> dict[str, Any]:
    """The webhook part of the form as the service takes it. Standard Webhooks fixes its headers; the
    vendor schemes need the header the vendor names."""
    fields: dict[str, Any] = {
        "digest_encoding": values["digest_encoding"] or "hex",
        "tolerance_seconds": _seconds(values, "tolerance_seconds", errors, "a whole number of seconds, 1 to 300"),
    }
    verifier = values["verifier"] or verifiers.STANDARD
    if creating:
        fields["verifier"] = verifier
    if verifier != verifiers.STANDARD:
        if not values["signature_header"]:
            errors["signature_header"] = "required: the header the vendor puts the signature in"
        fields["signature_header"] = values["signature_header"] or None
        fields["signature_prefix"] = values["signature_prefix"]
    return fields


# How each kind's part of the form becomes the service's fields.
KIND_PAYLOAD: dict[str, Callable[[Mapping[str, str], dict[str, str], bool], dict[str, Any]]] = {"webhook": _webhook}


def _form_values(data: Mapping[str, str], kind: str) -> dict[str, str]:
    return values_of(data, COMMON_FIELDS + KIND_FIELDS.get(kind, ()))


def _stored(connection: SourceConnection) -> dict[str, str]:
    """What the edit form starts with."""
    names = COMMON_FIELDS + KIND_FIELDS.get(connection.kind, ())
    return {n: "" if getattr(connection, n) is None else str(getattr(connection, n)) for n in names}


class CustomerConnectionsPageController(CustomerConsoleController):
    path = CONNECTIONS_PATH

    @get("/", opt={"permission": P.CONNECTIONS_READ})
    async def connections(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, offset: FromQuery[int] = 0
    ) -> Template:
        offset = first_row(offset)
        rows, total = await _admin(db_session, tenant, state).list(limit=PAGE_SIZE, offset=offset)
        return page(
            "customer/connections.html",
            principal=principal,
            connections=rows,
            total=total,
            titles=dict(EVENT_TYPES),
            **pager(offset),
        )

    def _new_form(self, principal: Principal, kind: str, values: dict[str, str], **context: Any) -> Template:
        return form_page(
            NEW_FORM,
            principal,
            kind=kind,
            kind_title=KIND_TITLES.get(kind, kind),
            values=values,
            event_types=EVENT_TYPES,
            verifiers=VERIFIERS,
            digests=DIGESTS,
            tolerance_hint=TOLERANCE_HINT,
            enabled=values.get("enabled", "on") == "on",
            **context,
        )

    @get("/new", opt={"permission": P.CONNECTIONS_WRITE})
    async def new_connection(self, principal: Caller) -> Template:
        return self._new_form(
            principal,
            "webhook",
            {"verifier": verifiers.STANDARD, "digest_encoding": "hex", "tolerance_seconds": "300", "enabled": "on"},
        )

    @post("/new", opt={"permission": P.CONNECTIONS_WRITE})
    async def create(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        data: Form,
    ) -> Template:
        kind = str(data.get("kind", "webhook"))
        if kind not in KIND_FIELDS:
            kind = "webhook"
        values = _form_values(data, kind)
        values["enabled"] = "on" if data.get("enabled") == "on" else ""
        # The secret is never echoed back into a page, not even into the form that refused it.
        secret = str(data.get("secret", "")).strip()
        errors = missing(values, ("name",))
        raw: dict[str, Any] = {
            "name": values["name"],
            "kind": kind,
            "source": or_none(values["source"]),
            "event_type": or_none(values["event_type"]),
            "enabled": values["enabled"] == "on",
            "secret": secret or None,
            **KIND_PAYLOAD[kind](values, errors, True),
        }
        if errors:
            return self._new_form(principal, kind, values, **refused(errors))
        try:
            connection, plaintext = await _admin(db_session, tenant, state).create(
                msgspec.convert(raw, ConnectionCreate)
            )
        except (AndonError, msgspec.ValidationError) as exc:
            return self._new_form(principal, kind, values, **await service_refused(db_session, principal, exc))
        return _issued(request, state, principal, connection, plaintext, status=201, rotated=False)

    async def _detail(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        principal: Principal,
        tenant: TenantContext,
        state: State,
        connection_id: uuid.UUID,
        *,
        outcome: str | None = None,
        offset: int = 0,
        values: dict[str, str] | None = None,
        rollover: str = DEFAULT_ROLLOVER,
        **context: Any,
    ) -> Template:
        admin = _admin(db_session, tenant, state)
        connection = await admin.get(connection_id)
        chosen = outcome if outcome in OUTCOMES else None
        deliveries, total = await admin.deliveries(connection.id, limit=PAGE_SIZE, offset=offset, outcome=chosen)
        return form_page(
            DETAIL,
            principal,
            connection=connection,
            hook_url=hook_url(request, state, connection),
            kind_title=KIND_TITLES.get(connection.kind, connection.kind),
            kind_form=connection.kind in KIND_FIELDS,
            verifier_title=VERIFIER_TITLES.get(connection.verifier, connection.verifier),
            type_title=CATALOGUE[connection.event_type].title if connection.event_type in CATALOGUE else None,
            values=values if values is not None else _stored(connection),
            enabled=connection.enabled if values is None else values.get("enabled") == "on",
            event_types=EVENT_TYPES,
            digests=DIGESTS,
            tolerance_hint=TOLERANCE_HINT,
            rollovers=ROLLOVERS,
            rollover=rollover,
            deliveries=deliveries,
            outcomes=OUTCOMES,
            outcome=chosen,
            total=total,
            **pager(offset, outcome=chosen),
            **context,
        )

    @get("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_READ})
    async def connection(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        connection_id: PathId,
        outcome: FromQuery[str | None] = None,
        offset: FromQuery[int] = 0,
    ) -> Template:
        return await self._detail(
            request, db_session, principal, tenant, state, connection_id, outcome=outcome, offset=first_row(offset)
        )

    @post("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_WRITE})
    async def update(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        connection_id: PathId,
        data: Form,
    ) -> Response[Any]:
        admin = _admin(db_session, tenant, state)
        connection = await admin.get(connection_id)
        kind = connection.kind if connection.kind in KIND_FIELDS else ""
        values = _form_values(data, kind)
        values["enabled"] = "on" if data.get("enabled") == "on" else ""
        errors = missing(values, ("name", "source"))
        raw: dict[str, Any] = {
            "name": values["name"],
            "source": values["source"],
            "event_type": or_none(values["event_type"]),
            "enabled": values["enabled"] == "on",
        }
        if kind:
            values["verifier"] = connection.verifier  # fixed at creation
            raw |= KIND_PAYLOAD[kind](values, errors, False)

        async def again(**problems: Any) -> Template:
            return await self._detail(
                request, db_session, principal, tenant, state, connection_id, values=values, **problems
            )

        if errors:
            return await again(**refused(errors))
        try:
            connection = await admin.update(connection_id, msgspec.convert(raw, ConnectionUpdate))
        except (AndonError, msgspec.ValidationError) as exc:
            return await again(**await service_refused(db_session, principal, exc))
        return redirect_with_notice(state.settings, f"{CONNECTIONS_PATH}/{connection.id}", "Saved.")

    @post("/{connection_id:uuid}/rotate", opt={"permission": P.CONNECTIONS_WRITE})
    async def rotate(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        connection_id: PathId,
        data: Form,
    ) -> Template:
        admin = _admin(db_session, tenant, state)
        await admin.get(connection_id)
        rollover = str(data.get("rollover_seconds", DEFAULT_ROLLOVER))
        secret = str(data.get("secret", "")).strip()
        errors: dict[str, str] = {}
        seconds = _seconds({"rollover_seconds": rollover}, "rollover_seconds", errors, "choose how long")
        if errors:
            problems = refused(errors)
        else:
            try:
                rotate = msgspec.convert({"secret": secret or None, "rollover_seconds": seconds}, SecretRotate)
                connection, plaintext = await admin.rotate(connection_id, rotate)
            except (AndonError, msgspec.ValidationError) as exc:
                problems = await service_refused(db_session, principal, exc)
            else:
                return _issued(request, state, principal, connection, plaintext, status=200, rotated=True)
        return await self._detail(
            request, db_session, principal, tenant, state, connection_id, rollover=rollover, **problems
        )

    @post("/{connection_id:uuid}/delete", opt={"permission": P.CONNECTIONS_WRITE})
    async def delete(self, db_session: DbSession, tenant: Tenant, state: State, connection_id: PathId) -> Response[Any]:
        admin = _admin(db_session, tenant, state)
        name = (await admin.get(connection_id)).name
        await admin.delete(connection_id)
        return redirect_with_notice(
            state.settings, CONNECTIONS_PATH, f"Removed {name}: its deliveries are refused from now on."
        )


def _issued(
    request: Request[Any, Any, Any],
    state: State,
    principal: Principal,
    connection: SourceConnection,
    secret: str | None,
    *,
    status: int,
    rotated: bool,
) -> Template:
    """The one answer that carries the secret. Not a redirect: the secret must not travel in an address
    (history, logs); no-store keeps it out of the browser's cache too."""
    response = page(
        ISSUED,
        status=status,
        principal=principal,
        connection=connection,
        secret=secret,
        rotated=rotated,
        hook_url=hook_url(request, state, connection),
        standard=connection.verifier == verifiers.STANDARD,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
