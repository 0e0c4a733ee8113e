"""A customer's source connections (reached by the customer or its partner), and the public hook
vendors deliver to."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromQuery, JSONBody

from andon.connectors.sources.models import SourceConnection
from andon.connectors.sources.schemas import (
    ConnectionCreate,
    ConnectionIssued,
    ConnectionRead,
    ConnectionUpdate,
    DeliveryRead,
    MappingResult,
    MappingTest,
    SecretRotate,
)
from andon.connectors.sources.service import CHANNEL, SourceConnectionAdmin, WebhookReceiver
from andon.platform.api.schemas import Page, to_read
from andon.platform.auth.rbac import P
from andon.platform.events.schemas import AcceptedRead, BatchAccepted
from andon.platform.http.errors import ValidationFailedError
from andon.platform.http.params import DbSession, Limit, Offset, PathId, Tenant
from andon.platform.observability.metrics import count_events
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY

HOOKS_PATH = "/hooks"


def _admin(db_session: DbSession, tenant: Tenant, state: State) -> SourceConnectionAdmin:
    return SourceConnectionAdmin(db_session, tenant, state.secretbox)


def _read(connection: SourceConnection) -> ConnectionRead:
    return msgspec.structs.replace(to_read(connection, ConnectionRead), webhook_path=f"{HOOKS_PATH}/{connection.id}")


def _issued(connection: SourceConnection, secret: str | None) -> ConnectionIssued:
    return ConnectionIssued(**msgspec.structs.asdict(_read(connection)), secret=secret)


async def _mapping_result(
    admin: SourceConnectionAdmin, data: MappingTest, connection_id: uuid.UUID | None
) -> MappingResult:
    try:
        events = await admin.test_mapping(data, connection_id)
    except ValidationFailedError as refusal:
        errors = [
            {"field": str(e.get("field", "")), "message": str(e.get("message", ""))} for e in refusal.extra["errors"]
        ]
        return MappingResult(ok=False, events=[], errors=errors)
    return MappingResult(ok=True, events=[msgspec.to_builtins(e) for e in events], errors=[])


class SourceConnectionController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/connections"
    tags = ["Connections"]
    dependencies = TENANT_DEPENDENCY

    @get("/", opt={"permission": P.CONNECTIONS_READ})
    async def list_connections(
        self, db_session: DbSession, tenant: Tenant, state: State, limit: Limit = 50, offset: Offset = 0
    ) -> Page[ConnectionRead]:
        rows, total = await _admin(db_session, tenant, state).list(limit=limit, offset=offset)
        return Page(items=[_read(r) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.CONNECTIONS_WRITE})
    async def create_connection(
        self, db_session: DbSession, tenant: Tenant, state: State, data: JSONBody[ConnectionCreate]
    ) -> ConnectionIssued:
        """The answer carries the signing secret, this once: give it to the sender now."""
        connection, secret = await _admin(db_session, tenant, state).create(data)
        return _issued(connection, secret)

    @get("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_READ})
    async def get_connection(
        self, db_session: DbSession, tenant: Tenant, state: State, connection_id: PathId
    ) -> ConnectionRead:
        return _read(await _admin(db_session, tenant, state).get(connection_id))

    @patch("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_WRITE})
    async def update_connection(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        connection_id: PathId,
        data: JSONBody[ConnectionUpdate],
    ) -> ConnectionRead:
        return _read(await _admin(db_session, tenant, state).update(connection_id, data))

    @delete("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_WRITE})
    async def delete_connection(
        self, db_session: DbSession, tenant: Tenant, state: State, connection_id: PathId
    ) -> None:
        await _admin(db_session, tenant, state).delete(connection_id)

    @post("/{connection_id:uuid}/rotate-secret", opt={"permission": P.CONNECTIONS_WRITE}, status_code=200)
    async def rotate_secret(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        connection_id: PathId,
        data: JSONBody[SecretRotate | None] = None,
    ) -> ConnectionIssued:
        """A new secret signs from now on; the previous one is still accepted for ``rollover_seconds``
        (default 24 h) while the sender switches over."""
        connection, secret = await _admin(db_session, tenant, state).rotate(connection_id, data or SecretRotate())
        return _issued(connection, secret)

    @post("/test-mapping", opt={"permission": P.CONNECTIONS_READ}, status_code=200)
    async def test_draft_mapping(
        self, db_session: DbSession, tenant: Tenant, state: State, data: JSONBody[MappingTest]
    ) -> MappingResult:
        """What a sample payload becomes under a mapping being drafted (before the connection exists).
        Nothing is stored."""
        return await _mapping_result(_admin(db_session, tenant, state), data, None)

    @post("/{connection_id:uuid}/test-mapping", opt={"permission": P.CONNECTIONS_READ}, status_code=200)
    async def test_mapping(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        connection_id: PathId,
        data: JSONBody[MappingTest],
    ) -> MappingResult:
        """What a sample payload becomes on this connection: its mapping, or the ``mapping`` given here
        to try a change before saving it. Nothing is stored."""
        return await _mapping_result(_admin(db_session, tenant, state), data, connection_id)

    @get("/{connection_id:uuid}/deliveries", opt={"permission": P.CONNECTIONS_READ})
    async def list_deliveries(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        connection_id: PathId,
        limit: Limit = 50,
        offset: Offset = 0,
        outcome: FromQuery[Literal["accepted", "duplicate", "refused"] | None] = None,
    ) -> Page[DeliveryRead]:
        """Newest first: what each request to the hook became, and why a refused one was refused."""
        rows, total = await _admin(db_session, tenant, state).deliveries(
            connection_id, limit=limit, offset=offset, outcome=outcome
        )
        return Page(items=[to_read(r, DeliveryRead) for r in rows], total=total, limit=limit, offset=offset)


class WebhookController(Controller):
    path = HOOKS_PATH
    tags = ["Webhooks"]

    @post(
        "/{connection_id:uuid}",
        # Public: a delivery proves its sender by its signature, checked here, not by an API key.
        opt={"public": True},
        status_code=201,
        description=(
            "A vendor's delivery, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, "
            "`webhook-signature`) or by the connection's vendor scheme. A structured CloudEvent is kept as "
            "it is (its source must be the connection's, or below it); any other JSON becomes the data of "
            "the connection's event type. A repeat answers 200 with the original acceptance."
        ),
    )
    async def deliver(self, request: Request[Any, Any, Any], state: State, connection_id: PathId) -> Response[Any]:
        body = await request.body()
        receiver = WebhookReceiver(state.sessionmaker, state.secretbox, state.rate_limiter.check_events)
        receipt = await receiver.receive(connection_id, dict(request.headers), body)
        count_events(CHANNEL, receipt.new, receipt.duplicates)
        if receipt.new:
            state.relay.wake()
        reads = [
            AcceptedRead(id=a.id, source=a.source, event_id=a.event_id, duplicate=a.duplicate) for a in receipt.accepted
        ]
        status = 201 if receipt.new else 200
        if len(reads) == 1:
            return Response(reads[0], status_code=status)
        # A mapping split the delivery into several events.
        return Response(
            BatchAccepted(accepted=reads, new=receipt.new, duplicates=receipt.duplicates), status_code=status
        )


SOURCE_CONTROLLERS = [SourceConnectionController, WebhookController]
