"""The agent's side of a call on a system inside the plant: the same connector type Andon would use,
run here, where the plant's private addresses are reachable. Every failure becomes an ``error`` answer
with the engine's kind; nothing secret is kept once the call is over."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import structlog

from andon.connectors.egress import Egress, EgressLimits
from andon.connectors.onprem.protocol import CallFailed, CallMessage, CallResult
from andon.connectors.outbound.catalogue import CONNECTOR_TYPES
from andon.connectors.outbound.runtime import redact
from andon.connectors.outbound.types import Using
from andon.platform.engine.capabilities import FAILED, INVALID, CapabilityError

log = structlog.get_logger("andon.relay.agent")


async def run_call(message: CallMessage, egress: Egress) -> CallResult | CallFailed:
    kind = CONNECTOR_TYPES.get(message.connector_type)
    spec = kind.capabilities.get(message.capability) if kind is not None else None
    if kind is None or spec is None:
        return CallFailed(
            id=message.id, kind=INVALID, message=f"this agent cannot run {message.connector_type}.{message.capability}"
        )
    try:
        config = msgspec.convert(message.config, kind.config)
        inputs = msgspec.convert(message.inputs, spec.inputs)
    except msgspec.ValidationError as exc:
        return CallFailed(id=message.id, kind=INVALID, message=f"the call does not fit its type here: {exc}")
    # Inside the plant, the plant's own addresses are the point: the agent may reach private ones.
    limits = EgressLimits(timeout_seconds=message.timeout_seconds, allow_private=True)
    using = Using(
        uuid.UUID(message.connection_id),
        message.name,
        config,
        message.secrets,
        egress,
        limits,
        message.idempotency_key,
    )
    try:
        output: Any = await spec.handler(using, inputs)
    except CapabilityError as exc:
        return CallFailed(
            id=message.id,
            kind=exc.kind,
            message=redact(str(exc), message.secrets)[:500],
            retry_after=getattr(exc, "retry_after", None),
        )
    except Exception as exc:  # an adapter's bug: reported as a failure, never as a stack trace
        detail = redact(f"{type(exc).__name__}: {exc}", message.secrets)[:500]
        log.warning("relay_call_crashed", call_id=message.id, error=detail)
        return CallFailed(id=message.id, kind=FAILED, message=detail)
    return CallResult(id=message.id, output=msgspec.to_builtins(output))
