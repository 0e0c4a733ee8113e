"""API shapes of source connections and their deliveries. Secrets are write-only, except the one
answer that creates or rotates them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from andon.connectors.sources.kinds import Kind

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
SourceUri = Annotated[str, msgspec.Meta(min_length=1, max_length=400, pattern=r"^\S+$")]
EventTypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
HeaderName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,99}$")]
Prefix = Annotated[str, msgspec.Meta(max_length=50)]
SecretIn = Annotated[str, msgspec.Meta(min_length=16, max_length=500)]
Tolerance = Annotated[int, msgspec.Meta(ge=1, le=300)]
# At most a week: a longer rollover keeps a secret someone wanted gone.
Rollover = Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 3600)]
Verifier = Literal["standard_webhooks", "shared_secret_header", "hmac_sha256_body"]
DigestEncoding = Literal["hex", "base64"]


class ConnectionCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    kind: Kind = "webhook"
    # What the kind needs (see GET /api/v1/connection-kinds): the MQTT topic, the polled URL, the folder.
    config: dict[str, Any] | None = None
    # JMESPath per envelope attribute (id, type, subject, time, severity, dedupkey, siteid, assetid,
    # data; items to split a payload). None: payloads are CloudEvents, or the data of event_type.
    mapping: dict[str, Any] | None = None
    # The CloudEvents source of what arrives here; default urn:andon:connection:<id>.
    source: SourceUri | None = None
    # The type a plain (non-CloudEvents) payload becomes; without it the connection takes CloudEvents only.
    event_type: EventTypeName | None = None
    verifier: Verifier = "standard_webhooks"
    # The vendor verifiers: the header that carries the secret or the body's HMAC, and a prefix the
    # value starts with ("sha256=", "Bearer ").
    signature_header: HeaderName | None = None
    signature_prefix: Prefix = ""
    digest_encoding: DigestEncoding = "hex"
    # A webhook's signing secret when the vendor dictates it (Andon generates one when omitted); a
    # poller's credential for the vendor's API.
    secret: SecretIn | None = None
    # The library that verifies Standard Webhooks allows at most 5 minutes, so a wider window could
    # never take effect.
    tolerance_seconds: Tolerance = 300
    enabled: bool = True


class ConnectionUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The verifier is fixed at creation (its secrets have another form); the secret changes by rotation."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    source: SourceUri | msgspec.UnsetType = msgspec.UNSET
    event_type: EventTypeName | msgspec.UnsetType | None = msgspec.UNSET
    signature_header: HeaderName | msgspec.UnsetType = msgspec.UNSET
    signature_prefix: Prefix | msgspec.UnsetType = msgspec.UNSET
    digest_encoding: DigestEncoding | msgspec.UnsetType = msgspec.UNSET
    tolerance_seconds: Tolerance | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    config: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    mapping: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET


class MappingTest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A sample payload to map; the mapping (and event type) of the connection unless given here."""

    payload: Any
    mapping: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    event_type: EventTypeName | None = None
    source: SourceUri | None = None


class MappingResult(msgspec.Struct, kw_only=True):
    """The events the sample becomes (nothing is stored), or why it cannot become any."""

    ok: bool
    events: list[dict[str, Any]]
    errors: list[dict[str, str]]


class SecretRotate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    secret: SecretIn | None = None
    # How long the secret being replaced is still accepted, while the sender switches over.
    rollover_seconds: Rollover = 24 * 3600


class ConnectionRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    kind: str
    config: dict[str, Any]
    mapping: dict[str, Any] | None
    source: str
    event_type: str | None
    verifier: str
    signature_header: str | None
    signature_prefix: str
    digest_encoding: str
    tolerance_seconds: int
    enabled: bool
    previous_secret_expires_at: datetime | None
    secret_rotated_at: datetime | None
    deliveries_accepted: int
    deliveries_duplicate: int
    deliveries_refused: int
    last_delivery_at: datetime | None
    last_delivery_outcome: str | None
    # Pollers: where the next fetch resumes, when it is due, and why the last one failed.
    cursor: str | None
    next_poll_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    # Where the vendor delivers (relative to the API's own address).
    webhook_path: str = ""


class ConnectionIssued(ConnectionRead, kw_only=True):
    """The only answer that carries the secret: store it now, it is not shown again."""

    secret: str | None


class DeliveryRead(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    connection_id: uuid.UUID
    created_at: datetime
    webhook_id: str | None
    outcome: str
    status_code: int
    reason: str | None
    event_ids: list[str]
