"""Calling a tenant's outbound connection: the one path every connector call takes.

1. Find the connection by its key inside the tenant; its secrets are opened only here, for the call.
2. Check the inputs against the capability's types (a clear ``invalid`` error, never a stack trace).
3. The circuit breaker: after ``BREAKER_FAILURES`` failures in a row that say the system is down,
   calls fail at once for ``BREAKER_SECONDS``, then one trial call decides whether it closes again.
4. The rate limit per connection and process (``rate_per_second``, a burst of one second's worth);
   over it, the call fails as ``failed`` with the wait, which the engine's retry turns into a delay.
5. The call itself through the egress guard, with the connection's timeout.
6. A record of the call (outcome, latency, a redacted summary of the inputs), in its own transaction.

Every error message and summary is scrubbed of the connection's secret values before it is stored,
logged or raised.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.egress import Egress, EgressLimits
from andon.connectors.onprem.calls import RedisRelayCalls, RelayCalls
from andon.connectors.onprem.protocol import CallMessage
from andon.connectors.outbound.catalogue import CONNECTOR_TYPES
from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.models import ConnectorCall, OutboundConnection
from andon.connectors.outbound.repository import OutboundConnectionRepository
from andon.connectors.outbound.types import ConnectorType, Using
from andon.platform.config.settings import Settings
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.db.scope import bind_tenant
from andon.platform.engine.capabilities import (
    FAILED,
    INVALID,
    NOT_FOUND,
    UNAVAILABLE,
    Call,
    CapabilityError,
)
from andon.platform.engine.executor import ENGINE
from andon.platform.http.rate_limit import MemoryBuckets
from andon.platform.tenancy.context import TenantContext, TenantId

log = structlog.get_logger("andon.connectors")

BREAKER_FAILURES = 5
BREAKER_SECONDS = 30.0
# Failures that say the system is unwell; a refused input or credential says nothing about it.
_COUNTS_FOR_BREAKER = frozenset({UNAVAILABLE, FAILED})
REDACTED = "[redacted]"


def redact(text: str, secrets: Mapping[str, str]) -> str:
    for value in sorted((v for v in secrets.values() if len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    open_until: float = 0.0
    trial: bool = False


class Breakers:
    """Per connection, in this process (each worker judges the system from its own calls)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._state: dict[uuid.UUID, _Breaker] = {}

    def admit(self, connection_id: uuid.UUID) -> float | None:
        """None: call. Otherwise the seconds until the circuit lets a trial call through."""
        state = self._state.get(connection_id)
        if state is None or state.failures < BREAKER_FAILURES:
            return None
        now = self.clock()
        if now < state.open_until or state.trial:
            return max(0.0, state.open_until - now) or BREAKER_SECONDS
        state.trial = True  # half open: this call decides
        return None

    def succeeded(self, connection_id: uuid.UUID) -> None:
        self._state.pop(connection_id, None)

    def failed(self, connection_id: uuid.UUID) -> None:
        state = self._state.setdefault(connection_id, _Breaker())
        state.failures += 1
        state.trial = False
        if state.failures >= BREAKER_FAILURES:
            state.open_until = self.clock() + BREAKER_SECONDS

    def is_open(self, connection_id: uuid.UUID) -> bool:
        state = self._state.get(connection_id)
        return state is not None and state.failures >= BREAKER_FAILURES


@dataclass(frozen=True, slots=True)
class Opened:
    """A connection read for one call, detached from its session, with its secrets opened."""

    id: uuid.UUID
    key: str
    name: str
    type: ConnectorType
    config: Any
    secrets: dict[str, str]
    relay_target: bool
    timeout_seconds: int
    rate_per_second: int


class OutboundCalls:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
        *,
        allow_private: bool = False,
        egress: Egress | None = None,
        clock: Callable[[], float] = time.monotonic,
        relay: RelayCalls | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        # Runs calls on relay targets through the customer's on-premise agent (None: no relay here).
        self.relay = relay
        self.box = box
        # Development and tests reach systems on this machine; production only relay targets.
        self.allow_private = allow_private
        self.egress = egress or Egress()
        self.breakers = Breakers(clock)
        self.clock = clock
        self._limits: dict[uuid.UUID, tuple[int, MemoryBuckets]] = {}

    async def close(self) -> None:
        await self.egress.close()

    def open(self, row: OutboundConnection) -> Opened:
        kind = CONNECTOR_TYPES.get(row.type)
        if kind is None:
            raise ConnectorError(f"connection {row.key}: unknown connector type {row.type}", INVALID)
        secrets = {name: self.box.open(sealed) for name, sealed in (row.secrets_sealed or {}).items()}
        try:
            config = msgspec.convert(row.config, kind.config)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ConnectorError(f"connection {row.key}: its settings are no longer valid ({exc})", INVALID) from None
        return Opened(
            row.id,
            row.key,
            row.name,
            kind,
            config,
            secrets,
            row.relay_target,
            row.timeout_seconds,
            row.rate_per_second,
        )

    async def find(self, tenant: TenantContext, key: str) -> Opened:
        async with self.sessionmaker() as session, session.begin():
            await bind_tenant(session, tenant.tenant_id, tenant.principal)
            row = await OutboundConnectionRepository(session, tenant).by_key(key)
            if row is None:
                raise ConnectorError(f"no outbound connection with key {key}", NOT_FOUND)
            if not row.enabled:
                raise ConnectorError(f"the connection {key} is turned off", UNAVAILABLE)
            if row.relay_target and self.relay is None:
                # Such a system sits inside the plant's network: only the on-premise relay agent may
                # reach it, never Andon's own servers (its address would be an SSRF hole here).
                raise ConnectorError(
                    f"the connection {key} is reached through the plant's on-premise relay, which is not connected",
                    UNAVAILABLE,
                )
            return self.open(row)

    def using(self, opened: Opened, idempotency_key: str, within: float | None = None) -> Using:
        """``within``: the caller's own deadline (the step's timeout), when shorter than the connection's."""
        limits = EgressLimits(
            timeout_seconds=min(within, opened.timeout_seconds) if within else opened.timeout_seconds,
            allow_private=self.allow_private,
        )
        return Using(opened.id, opened.name, opened.config, opened.secrets, self.egress, limits, idempotency_key)

    async def call(
        self,
        tenant: TenantContext,
        key: str,
        capability: str,
        inputs: Any,
        *,
        idempotency_key: str,
        run_id: uuid.UUID | None = None,
        step_key: str | None = None,
        within: float | None = None,
    ) -> Any:
        opened = await self.find(tenant, key)
        spec = opened.type.capabilities.get(capability)
        if spec is None:
            offered = ", ".join(sorted(opened.type.capabilities))
            raise ConnectorError(f"{opened.type.title} connections offer {offered}, not {capability}", INVALID)
        try:
            # A workflow renders its inputs from templates, so a number or a flag arrives as its text
            # ("4", "true"): it is read as the type the capability declares.
            parsed = msgspec.convert(inputs, spec.inputs, strict=False)
        except msgspec.ValidationError as exc:
            raise ConnectorError(f"inputs: {exc}", INVALID) from None
        summary = redact(msgspec.json.encode(inputs).decode(errors="replace"), opened.secrets)[:500]
        started = time.perf_counter()
        outcome, error = "ok", None
        try:
            wait = self.breakers.admit(opened.id)
            if wait is not None:
                outcome = "circuit_open"
                raise ConnectorError(
                    f"{opened.name} failed {BREAKER_FAILURES} times in a row; calls resume in {wait:.0f} s",
                    UNAVAILABLE,
                    retry_after=wait,
                )
            limited = await self._bucket(opened).take(str(opened.id))
            if limited is not None:
                outcome = "limited"
                raise ConnectorError(
                    f"{opened.name}: more than {opened.rate_per_second} calls a second; retry in {limited:.2f} s",
                    FAILED,
                    retry_after=limited,
                )
            try:
                if opened.relay_target and self.relay is not None:
                    result = await self.relay.call(
                        tenant.tenant_id, relay_call(opened, capability, parsed, idempotency_key, within)
                    )
                else:
                    result = await spec.handler(self.using(opened, idempotency_key, within), parsed)
            except CapabilityError as exc:
                if exc.kind in _COUNTS_FOR_BREAKER:
                    self.breakers.failed(opened.id)
                raise
            self.breakers.succeeded(opened.id)
            return result
        except CapabilityError as exc:
            outcome = outcome if outcome != "ok" else exc.kind
            error = redact(str(exc), opened.secrets)[:500]
            scrubbed = ConnectorError(error, exc.kind, retry_after=getattr(exc, "retry_after", None))
            raise scrubbed from None
        except Exception as exc:  # an adapter's bug: reported as such, with nothing secret in it
            outcome, error = "failed", redact(f"{type(exc).__name__}: {exc}", opened.secrets)[:500]
            log.warning("connector_call_crashed", connection=opened.key, capability=capability, error=error)
            raise ConnectorError(error, FAILED) from None
        finally:
            latency = round((time.perf_counter() - started) * 1000, 2)
            await self._record(tenant, opened, capability, run_id, step_key, outcome, latency, error, summary)

    async def capability(self, call: Call) -> Any:
        """The engine's way in: ``<key>.<capability>`` of the run's tenant, with the step's key."""
        key, _, capability = call.capability.partition(".")
        if call.partner_id is None:  # pragma: no cover - the executor always says whose tenant it is
            raise ConnectorError("a connection call needs the tenant's partner", INVALID)
        tenant = TenantContext(tenant_id=TenantId(call.tenant_id), partner_id=call.partner_id, principal=ENGINE)
        return await self.call(
            tenant,
            key,
            capability,
            call.inputs,
            idempotency_key=call.idempotency_key,
            run_id=call.run_id,
            step_key=call.step_key,
            within=call.timeout,
        )

    async def check(self, opened: Opened) -> list[tuple[str, bool, str]]:
        """The connection's own check; every detail scrubbed of its secrets."""
        try:
            steps = await opened.type.check(self.using(opened, f"andon:check:{uuid.uuid4()}"))
        except Exception as exc:  # a check reports, it never fails the request
            steps = [("check", False, f"{type(exc).__name__}: {exc}")]
        return [(what, ok, redact(detail, opened.secrets)[:500]) for what, ok, detail in steps]

    def _bucket(self, opened: Opened) -> MemoryBuckets:
        held = self._limits.get(opened.id)
        if held is None or held[0] != opened.rate_per_second:
            rate = max(1, opened.rate_per_second)
            held = (opened.rate_per_second, MemoryBuckets(rate, rate, clock=self.clock))
            self._limits[opened.id] = held
        return held[1]

    async def _record(
        self,
        tenant: TenantContext,
        opened: Opened,
        capability: str,
        run_id: uuid.UUID | None,
        step_key: str | None,
        outcome: str,
        latency: float,
        error: str | None,
        summary: str,
    ) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                await bind_tenant(session, tenant.tenant_id, tenant.principal)
                await OutboundConnectionRepository(session, tenant).record_call(
                    ConnectorCall(
                        connection_id=opened.id,
                        capability=capability,
                        run_id=run_id,
                        step_key=step_key,
                        outcome=outcome[:20],
                        latency_ms=latency,
                        error=error,
                        summary=summary,
                    )
                )
        except Exception as exc:  # the call's own outcome matters more than its record
            log.warning("connector_call_not_recorded", connection=opened.key, error=type(exc).__name__)


def relay_call(opened: Opened, capability: str, inputs: Any, idempotency_key: str, within: float | None) -> CallMessage:
    """A call for the plant's relay agent to run with the connection's own type (``connectors/onprem``)."""
    return CallMessage(
        id=str(uuid.uuid4()),
        connection_id=str(opened.id),
        name=opened.name,
        connector_type=opened.type.key,
        config=msgspec.to_builtins(opened.config),
        secrets=opened.secrets,
        capability=capability,
        inputs=msgspec.to_builtins(inputs),
        idempotency_key=idempotency_key,
        timeout_seconds=min(within, opened.timeout_seconds) if within else opened.timeout_seconds,
    )


def engine_connections(
    settings: Settings, box: SecretBox, local_relay: RelayCalls | None = None
) -> Callable[[async_sessionmaker[AsyncSession]], OutboundCalls]:
    """What a worker routes ``<key>.<capability>`` names to, made inside its own event loop. Relay
    targets go through Redis to whichever web process holds the agent, or, without Redis, to this
    process's own agents (``local_relay``)."""

    def made(sessionmaker: async_sessionmaker[AsyncSession]) -> OutboundCalls:
        allowed = settings.private_networks_allowed(settings.connectors.allow_private_networks)
        relay = local_relay
        if settings.redis.url:
            relay = RedisRelayCalls(settings.redis.url, settings.redis.namespace, box)
        return OutboundCalls(sessionmaker, box, allow_private=allowed, relay=relay)

    return made
