"""What a connector type declares: its settings, its secrets and its capabilities (typed inputs).

A connector type is code (how to speak to a kind of system); an outbound connection is one tenant's
configured instance of it. The portal renders a type's settings as a form from the JSON Schema of
``config``; secrets are separate, write-only fields.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from andon.connectors.egress import Egress, EgressLimits


@dataclass(frozen=True, slots=True)
class SecretField:
    name: str
    title: str
    # Needed only for some settings (an OAuth client secret only with OAuth); checked by ``needs``.
    needed_when: Callable[[Any], bool] = field(default=lambda config: True)


@dataclass(frozen=True, slots=True)
class Using:
    """A connection as a call sees it: its settings, its opened secrets, and the guarded client."""

    connection_id: Any
    name: str
    config: Any
    secrets: Mapping[str, str]
    egress: Egress
    limits: EgressLimits
    idempotency_key: str


# A capability's work: the inputs (validated against its struct) in, a JSON-able answer out; it raises
# ConnectorError (connectors/outbound/errors.py) for a failure the engine should know the kind of.
Handler = Callable[[Using, Any], Awaitable[Any]]
# "Check connection": what was tried and how it went, e.g. [("resolve and connect", True, "200 in 41 ms")].
Checker = Callable[[Using], Awaitable[list[tuple[str, bool, str]]]]


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    title: str
    inputs: type[msgspec.Struct]
    handler: Handler


@dataclass(frozen=True, slots=True)
class ConnectorType:
    key: str
    title: str
    description: str
    config: type[msgspec.Struct]
    secrets: tuple[SecretField, ...]
    capabilities: Mapping[str, Capability]
    check: Checker

    def needed_secrets(self, config: Any) -> list[str]:
        return [s.name for s in self.secrets if s.needed_when(config)]

    def config_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = msgspec.json.schema(self.config)
        return schema

    def inputs_schema(self, capability: str) -> dict[str, Any]:
        schema: dict[str, Any] = msgspec.json.schema(self.capabilities[capability].inputs)
        return schema
