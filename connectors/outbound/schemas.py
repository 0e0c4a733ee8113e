"""API shapes of outbound connections. Secrets are write-only: a read names which are set, never them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

# The name workflows call it by: an action step's capability is "<key>.<capability>".
Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,59}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
SecretValue = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Timeout = Annotated[int, msgspec.Meta(ge=1, le=120)]
Rate = Annotated[int, msgspec.Meta(ge=1, le=1000)]


class OutboundCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: Key
    name: Name
    type: str
    config: dict[str, Any] = {}
    secrets: dict[str, SecretValue] = {}
    relay_target: bool = False
    enabled: bool = True
    timeout_seconds: Timeout = 10
    rate_per_second: Rate = 10


class OutboundUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``secrets`` replaces the ones named (the others stay); the key and type are fixed."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    config: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    secrets: dict[str, SecretValue] | msgspec.UnsetType = msgspec.UNSET
    relay_target: bool | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    timeout_seconds: Timeout | msgspec.UnsetType = msgspec.UNSET
    rate_per_second: Rate | msgspec.UnsetType = msgspec.UNSET


class CheckStep(msgspec.Struct):
    what: str
    ok: bool
    detail: str


class OutboundRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    key: str
    name: str
    type: str
    config: dict[str, Any]
    secrets_set: list[str]
    secrets_missing: list[str]
    capabilities: list[str]
    relay_target: bool
    enabled: bool
    timeout_seconds: int
    rate_per_second: int
    circuit_open: bool
    last_check_at: datetime | None
    last_check_ok: bool | None
    last_check: list[CheckStep] | None
    created_at: datetime
    updated_at: datetime


class CheckResult(msgspec.Struct):
    ok: bool
    steps: list[CheckStep]


class CallRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    capability: str
    run_id: uuid.UUID | None
    step_key: str | None
    outcome: str
    latency_ms: float
    error: str | None
    summary: str
    created_at: datetime


class CapabilityRead(msgspec.Struct):
    name: str
    title: str
    inputs_schema: dict[str, Any]


class SecretRead(msgspec.Struct):
    name: str
    title: str


class ConnectorTypeRead(msgspec.Struct, kw_only=True):
    key: str
    title: str
    description: str
    config_schema: dict[str, Any]
    secrets: list[SecretRead]
    capabilities: list[CapabilityRead]
