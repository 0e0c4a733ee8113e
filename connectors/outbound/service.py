"""A tenant's outbound connections: create, change, check, and the record of their calls.

Secrets are sealed on the way in and never leave again: not in answers, the audit trail or errors.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from andon.connectors.outbound.catalogue import CONNECTOR_TYPES
from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.models import ConnectorCall, OutboundConnection
from andon.connectors.outbound.repository import ConnectorCallRepository, OutboundConnectionRepository
from andon.connectors.outbound.runtime import OutboundCalls
from andon.connectors.outbound.schemas import CheckResult, CheckStep, OutboundCreate, OutboundUpdate
from andon.connectors.outbound.types import ConnectorType
from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.db.ids import new_id
from andon.platform.db.types import utcnow
from andon.platform.engine.capabilities import Capabilities
from andon.platform.http.errors import ConflictError, NotFoundError, ValidationFailedError, field_error
from andon.platform.tenancy.context import TenantContext

_NOT_AUDITED = frozenset({"secrets_sealed", "last_check", "last_check_at", "last_check_ok"})
# Keys the engine's own capabilities begin with ("http.post"): a connection may not shadow them.
RESERVED_KEYS = frozenset(name.split(".", 1)[0] for name in Capabilities().names())


def connector_type(key: str) -> ConnectorType:
    kind = CONNECTOR_TYPES.get(key)
    if kind is None:
        raise field_error("type", f"unknown connector type; one of {', '.join(sorted(CONNECTOR_TYPES))}")
    return kind


def checked_config(kind: ConnectorType, config: dict[str, Any]) -> dict[str, Any]:
    try:
        parsed = msgspec.convert(config, kind.config)
    except msgspec.ValidationError as exc:
        where = str(exc).rsplit("at `$.", 1)
        field = "config." + where[1].rstrip("`") if len(where) == 2 else "config"
        raise ValidationFailedError(
            f"config: {exc}", extra={"errors": [{"field": field, "message": str(exc)}]}
        ) from None
    except ValueError as exc:  # a rule across settings (__post_init__)
        raise field_error("config", str(exc)) from None
    built: dict[str, Any] = msgspec.to_builtins(parsed)
    return built


class OutboundConnectionAdmin:
    def __init__(self, session: AsyncSession, tenant: TenantContext, calls: OutboundCalls) -> None:
        self.session = session
        self.tenant = tenant
        self.calls = calls
        self.repo = OutboundConnectionRepository(session, tenant)

    def _audited(self, connection: OutboundConnection) -> dict[str, Any]:
        values = {k: v for k, v in snapshot(connection).items() if k not in _NOT_AUDITED}
        values["secrets_set"] = sorted(connection.secrets_sealed or {})
        return values

    async def _audit(self, action: str, connection: OutboundConnection, before: dict[str, Any] | None = None) -> None:
        await record(
            self.session,
            self.tenant.principal,
            action,
            target_type="outbound_connection",
            target_id=connection.id,
            before=before,
            after=self._audited(connection) if not action.endswith(".deleted") else None,
            tenant=self.tenant,
        )

    async def get(self, connection_id: Any) -> OutboundConnection:
        connection = await self.repo.get(connection_id)
        if connection is None:
            raise NotFoundError(f"outbound connection {connection_id} not found")
        return connection

    async def list(self, *, limit: int, offset: int) -> tuple[Sequence[OutboundConnection], int]:
        return await self.repo.page(limit=limit, offset=offset)

    def _sealed(self, kind: ConnectorType, secrets: dict[str, str], held: dict[str, str]) -> dict[str, str]:
        known = {s.name for s in kind.secrets}
        unknown = sorted(set(secrets) - known)
        if unknown:
            raise field_error(
                f"secrets.{unknown[0]}", f"{kind.title} connections keep {', '.join(sorted(known))}, not {unknown[0]}"
            )
        return {**held, **{name: self.calls.box.seal(value) for name, value in secrets.items()}}

    async def create(self, data: OutboundCreate) -> OutboundConnection:
        kind = connector_type(data.type)
        if data.key in RESERVED_KEYS:
            raise field_error("key", f"{data.key} is the name of a built-in capability; choose another key")
        config = checked_config(kind, data.config)
        if await self.repo.by_key(data.key) is not None:
            raise ConflictError(
                f"an outbound connection with key '{data.key}' already exists",
                extra={"errors": [{"field": "key", "message": "already in use"}]},
            )
        connection = await self.repo.add(
            OutboundConnection(
                id=new_id(),
                key=data.key,
                name=data.name,
                type=data.type,
                config=config,
                secrets_sealed=self._sealed(kind, dict(data.secrets), {}),
                relay_target=data.relay_target,
                enabled=data.enabled,
                timeout_seconds=data.timeout_seconds,
                rate_per_second=data.rate_per_second,
            )
        )
        await self._audit("outbound_connection.created", connection)
        return connection

    async def update(self, connection_id: Any, data: OutboundUpdate) -> OutboundConnection:
        connection = await self.get(connection_id)
        before = self._audited(connection)
        kind = connector_type(connection.type)
        if data.config is not msgspec.UNSET:
            connection.config = checked_config(kind, data.config)
        if data.secrets is not msgspec.UNSET:
            connection.secrets_sealed = self._sealed(kind, dict(data.secrets), dict(connection.secrets_sealed or {}))
        for name in ("name", "relay_target", "enabled", "timeout_seconds", "rate_per_second"):
            value = getattr(data, name)
            if value is not msgspec.UNSET:
                setattr(connection, name, value)
        await self.session.flush()
        await self._audit("outbound_connection.updated", connection, before)
        return connection

    async def delete(self, connection_id: Any) -> None:
        connection = await self.get(connection_id)
        await self._audit("outbound_connection.deleted", connection, self._audited(connection))
        await self.repo.delete(connection)

    async def check(self, connection_id: Any) -> CheckResult:
        """Calls the system the way the connector type checks it, and keeps the outcome on the connection."""
        connection = await self.get(connection_id)
        missing = self.missing_secrets(connection)
        if missing:
            steps = [CheckStep("secrets", False, f"not set: {', '.join(missing)}")]
        elif connection.relay_target:
            steps = [CheckStep("on-premise relay", False, "reached through the plant's relay, which is not connected")]
        else:
            try:
                opened = self.calls.open(connection)
            except ConnectorError as exc:
                steps = [CheckStep("settings", False, str(exc))]
            else:
                steps = [CheckStep(*step) for step in await self.calls.check(opened)]
        ok = all(step.ok for step in steps)
        connection.last_check_at, connection.last_check_ok = utcnow(), ok
        connection.last_check = [msgspec.to_builtins(step) for step in steps]
        await self.session.flush()
        return CheckResult(ok=ok, steps=steps)

    async def recent_calls(self, connection_id: Any, *, limit: int) -> Sequence[ConnectorCall]:
        connection = await self.get(connection_id)
        return await ConnectorCallRepository(self.session, self.tenant).recent(connection.id, limit=limit)

    @staticmethod
    def config_of(connection: OutboundConnection) -> Any:
        kind = connector_type(connection.type)
        try:
            return msgspec.convert(connection.config, kind.config)
        except (msgspec.ValidationError, ValueError):
            return None

    def missing_secrets(self, connection: OutboundConnection) -> builtins.list[str]:
        kind = connector_type(connection.type)
        config = self.config_of(connection)
        return [n for n in kind.needed_secrets(config) if n not in (connection.secrets_sealed or {})]


async def offered_capabilities(session: AsyncSession, tenant: TenantContext, key: str) -> tuple[str, set[str]] | None:
    """The type and capability names of the tenant's connection ``key`` (for binding a template's
    requirements to it), or None when the tenant has no such connection."""
    connection = await OutboundConnectionRepository(session, tenant).by_key(key)
    if connection is None:
        return None
    kind = CONNECTOR_TYPES.get(connection.type)
    return connection.type, set(kind.capabilities) if kind else set()
