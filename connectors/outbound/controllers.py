"""The connector catalogue, and a customer's outbound connections (reached by the customer or its partner)."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody

from andon.connectors.outbound.catalogue import CONNECTOR_TYPES
from andon.connectors.outbound.models import OutboundConnection
from andon.connectors.outbound.schemas import (
    CallRead,
    CapabilityRead,
    CheckResult,
    CheckStep,
    ConnectorTypeRead,
    OutboundCreate,
    OutboundRead,
    OutboundUpdate,
    SecretRead,
)
from andon.connectors.outbound.service import OutboundConnectionAdmin, connector_type
from andon.platform.api.schemas import Page, to_read
from andon.platform.auth.rbac import P
from andon.platform.http.params import DbSession, Limit, Offset, PathId, Tenant
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY


def _admin(db_session: DbSession, tenant: Tenant, state: State) -> OutboundConnectionAdmin:
    return OutboundConnectionAdmin(db_session, tenant, state.outbound)


def _read(admin: OutboundConnectionAdmin, connection: OutboundConnection) -> OutboundRead:
    kind = connector_type(connection.type)
    return OutboundRead(
        id=connection.id,
        key=connection.key,
        name=connection.name,
        type=connection.type,
        config=connection.config,
        secrets_set=sorted(connection.secrets_sealed or {}),
        secrets_missing=admin.missing_secrets(connection),
        capabilities=[f"{connection.key}.{name}" for name in sorted(kind.capabilities)],
        relay_target=connection.relay_target,
        enabled=connection.enabled,
        timeout_seconds=connection.timeout_seconds,
        rate_per_second=connection.rate_per_second,
        circuit_open=admin.calls.breakers.is_open(connection.id),
        last_check_at=connection.last_check_at,
        last_check_ok=connection.last_check_ok,
        last_check=[CheckStep(**s) for s in connection.last_check] if connection.last_check else None,
        created_at=connection.created_at,
        updated_at=connection.updated_at,
    )


class ConnectorTypeController(Controller):
    path = "/api/v1/connector-types"
    tags = ["Outbound connections"]

    @get("/", opt={"permission": P.CONNECTIONS_READ})
    async def list_types(self) -> list[ConnectorTypeRead]:
        """What Andon can connect to: each type's settings (JSON Schema), secrets and capabilities."""
        return [
            ConnectorTypeRead(
                key=kind.key,
                title=kind.title,
                description=kind.description,
                config_schema=kind.config_schema(),
                secrets=[SecretRead(s.name, s.title) for s in kind.secrets],
                capabilities=[
                    CapabilityRead(c.name, c.title, kind.inputs_schema(c.name)) for c in kind.capabilities.values()
                ],
            )
            for kind in CONNECTOR_TYPES.values()
        ]


class OutboundConnectionController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/outbound-connections"
    tags = ["Outbound connections"]
    dependencies = TENANT_DEPENDENCY

    @get("/", opt={"permission": P.CONNECTIONS_READ})
    async def list_connections(
        self, db_session: DbSession, tenant: Tenant, state: State, limit: Limit = 50, offset: Offset = 0
    ) -> Page[OutboundRead]:
        admin = _admin(db_session, tenant, state)
        rows, total = await admin.list(limit=limit, offset=offset)
        return Page(items=[_read(admin, r) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.CONNECTIONS_WRITE})
    async def create_connection(
        self, db_session: DbSession, tenant: Tenant, state: State, data: JSONBody[OutboundCreate]
    ) -> OutboundRead:
        admin = _admin(db_session, tenant, state)
        return _read(admin, await admin.create(data))

    @get("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_READ})
    async def get_connection(
        self, db_session: DbSession, tenant: Tenant, state: State, connection_id: PathId
    ) -> OutboundRead:
        admin = _admin(db_session, tenant, state)
        return _read(admin, await admin.get(connection_id))

    @patch("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_WRITE})
    async def update_connection(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        connection_id: PathId,
        data: JSONBody[OutboundUpdate],
    ) -> OutboundRead:
        admin = _admin(db_session, tenant, state)
        return _read(admin, await admin.update(connection_id, data))

    @delete("/{connection_id:uuid}", opt={"permission": P.CONNECTIONS_WRITE})
    async def delete_connection(
        self, db_session: DbSession, tenant: Tenant, state: State, connection_id: PathId
    ) -> None:
        await _admin(db_session, tenant, state).delete(connection_id)

    @post("/{connection_id:uuid}/check", opt={"permission": P.CONNECTIONS_WRITE}, status_code=200)
    async def check_connection(
        self, db_session: DbSession, tenant: Tenant, state: State, connection_id: PathId
    ) -> CheckResult:
        """Calls the system and reports, step by step, what worked."""
        return await _admin(db_session, tenant, state).check(connection_id)

    @get("/{connection_id:uuid}/calls", opt={"permission": P.CONNECTIONS_READ})
    async def list_calls(
        self, db_session: DbSession, tenant: Tenant, state: State, connection_id: PathId, limit: Limit = 50
    ) -> list[CallRead]:
        """The latest calls, newest first: outcome, latency and a summary with secrets redacted."""
        rows = await _admin(db_session, tenant, state).recent_calls(connection_id, limit=limit)
        return [to_read(r, CallRead) for r in rows]


OUTBOUND_CONTROLLERS = [ConnectorTypeController, OutboundConnectionController]
