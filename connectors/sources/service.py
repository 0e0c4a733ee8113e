"""Source connections: their administration inside a tenant, and the signed webhooks they receive.

A delivery reaches ``/hooks/{connection_id}`` with no credentials but its signature; what happens
to it after that is the intake's (``intake.py``), as for every other channel.
"""

from __future__ import annotations

import builtins
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.onprem.tokens import issue_token
from andon.connectors.sources import verifiers
from andon.connectors.sources.intake import NOT_HERE, ConnectionIntake, Delivery, Receipt, Refused, to_events
from andon.connectors.sources.kinds import POLLED, normalised_config
from andon.connectors.sources.mapping import check_mapping
from andon.connectors.sources.models import SECRET_COLUMNS, SourceConnection, WebhookDelivery
from andon.connectors.sources.repository import ConnectionFound, DeliveryRepository, SourceConnectionRepository
from andon.connectors.sources.schemas import ConnectionCreate, ConnectionUpdate, MappingTest, SecretRotate
from andon.platform.api.schemas import apply_update
from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.db.ids import new_id
from andon.platform.db.types import utcnow
from andon.platform.events.catalogue import CATALOGUE
from andon.platform.events.envelope import CloudEvent
from andon.platform.http.errors import AndonError, ConflictError, NotFoundError, field_error
from andon.platform.tenancy.context import TenantContext

CHANNEL = "webhook"
# Counters and the last delivery are traffic, not settings: they stay out of the audit trail.
_NOT_AUDITED = SECRET_COLUMNS | {
    "deliveries_accepted",
    "deliveries_duplicate",
    "deliveries_refused",
    "last_delivery_at",
    "last_delivery_outcome",
    "cursor",
    "next_poll_at",
    "last_error",
}


def default_source(connection_id: uuid.UUID) -> str:
    return f"urn:andon:connection:{connection_id}"


def _audited(connection: SourceConnection) -> dict[str, Any]:
    return {k: v for k, v in snapshot(connection).items() if k not in _NOT_AUDITED}


class SourceConnectionAdmin:
    """A tenant's connections. Secrets are sealed at rest and leave only in the create and rotate answers."""

    def __init__(self, session: AsyncSession, tenant: TenantContext, box: SecretBox) -> None:
        self.session = session
        self.tenant = tenant
        self.box = box
        self.repo = SourceConnectionRepository(session, tenant)

    async def _audit(self, action: str, connection: SourceConnection, before: dict[str, Any] | None = None) -> None:
        await record(
            self.session,
            self.tenant.principal,
            action,
            target_type="source_connection",
            target_id=connection.id,
            before=before,
            after=_audited(connection) if action != "source_connection.deleted" else None,
            tenant=self.tenant,
        )

    async def get(self, connection_id: uuid.UUID) -> SourceConnection:
        connection = await self.repo.get(connection_id)
        if connection is None:
            raise NotFoundError(f"connection {connection_id} not found")
        return connection

    async def list(self, *, limit: int, offset: int) -> tuple[Sequence[SourceConnection], int]:
        return await self.repo.page(limit=limit, offset=offset)

    async def _name_free(self, name: str, other_than: uuid.UUID | None = None) -> None:
        if await self.repo.name_taken(name, other_than):
            raise ConflictError(
                f"a connection named '{name}' already exists",
                extra={"errors": [{"field": "name", "message": "already in use"}]},
            )

    @staticmethod
    def _check(kind: str, event_type: str | None, verifier: str, signature_header: str | None) -> None:
        if event_type is not None and event_type not in CATALOGUE:
            raise field_error("event_type", f"unknown event type; see GET /api/v1/event-types ({len(CATALOGUE)} types)")
        if kind == "webhook" and verifier != verifiers.STANDARD and not signature_header:
            raise field_error("signature_header", f"the {verifier} verifier reads the signature from a header: name it")

    def _secret(self, verifier: str, chosen: str | None) -> str:
        if chosen is None:
            return verifiers.generate_secret(verifier)
        problem = verifiers.secret_problem(verifier, chosen)
        if problem:
            raise field_error("secret", problem)
        return chosen

    async def create(self, data: ConnectionCreate) -> tuple[SourceConnection, str | None]:
        """The connection, and its secret when it has one: a webhook's signing secret (generated
        unless the vendor dictates it), or the credential a poller presents (only if given)."""
        webhook = data.kind == "webhook"
        self._check(data.kind, data.event_type, data.verifier, data.signature_header)
        config = normalised_config(data.kind, data.config)
        check_mapping(data.mapping)
        await self._name_free(data.name)
        connection_id = new_id()
        if data.kind == "relay":
            if data.secret is not None:
                raise field_error("secret", "a relay agent's token is generated by Andon")
            secret: str | None = issue_token(connection_id)
        else:
            secret = self._secret(data.verifier, data.secret) if webhook else data.secret
        connection = await self.repo.add(
            SourceConnection(
                id=connection_id,
                name=data.name,
                kind=data.kind,
                source=data.source or default_source(connection_id),
                event_type=data.event_type,
                config=config,
                mapping=data.mapping,
                verifier=data.verifier if webhook else "none",
                # Standard Webhooks fixes its headers; a header named for it would only mislead.
                signature_header=data.signature_header if webhook and data.verifier != verifiers.STANDARD else None,
                signature_prefix=data.signature_prefix if webhook and data.verifier != verifiers.STANDARD else "",
                digest_encoding=data.digest_encoding,
                secret_sealed=self.box.seal(secret) if secret else None,
                tolerance_seconds=data.tolerance_seconds,
                enabled=data.enabled,
                # A poller's first fetch is due at once.
                next_poll_at=utcnow() if data.kind in POLLED else None,
                deliveries_accepted=0,
                deliveries_duplicate=0,
                deliveries_refused=0,
            )
        )
        await self._audit("source_connection.created", connection)
        return connection, secret

    async def update(self, connection_id: uuid.UUID, data: ConnectionUpdate) -> SourceConnection:
        connection = await self.get(connection_id)
        before = _audited(connection)
        if data.name is not msgspec.UNSET and data.name != connection.name:
            await self._name_free(data.name, connection.id)
        event_type = connection.event_type if data.event_type is msgspec.UNSET else data.event_type
        header = connection.signature_header if data.signature_header is msgspec.UNSET else data.signature_header
        webhook = connection.kind == "webhook"
        self._check(connection.kind, event_type, connection.verifier, header)
        if data.config is not msgspec.UNSET:
            data.config = normalised_config(connection.kind, data.config)
        if data.mapping is not msgspec.UNSET:
            check_mapping(data.mapping)
        apply_update(connection, data)
        if connection.verifier == verifiers.STANDARD or not webhook:
            connection.signature_header, connection.signature_prefix = None, ""
        if connection.kind in POLLED and connection.enabled:
            # A fixed connection is fetched now, not after the backoff its last failure earned.
            connection.next_poll_at = utcnow()
        await self.session.flush()
        await self._audit("source_connection.updated", connection, before)
        return connection

    async def rotate(self, connection_id: uuid.UUID, data: SecretRotate) -> tuple[SourceConnection, str]:
        """The new secret signs from now on; the one it replaces is still accepted for the rollover
        (a secret older than that is dropped at once: two secrets in force at most)."""
        connection = await self.get(connection_id)
        before = _audited(connection)
        if connection.kind == "webhook":
            secret = self._secret(connection.verifier, data.secret)
        elif connection.kind == "relay":
            if data.secret is not None:
                raise field_error("secret", "a relay agent's token is generated by Andon")
            # The old token keeps working for the rollover, while the agent is given the new one.
            secret = issue_token(connection.id)
        elif data.secret is None:
            raise field_error("secret", f"a {connection.kind} connection's credential is the vendor's: give it")
        else:
            # A vendor's key is replaced outright: nothing signs with the old one on Andon's side.
            secret, data.rollover_seconds = data.secret, 0
        now = utcnow()
        if data.rollover_seconds > 0:
            connection.previous_secret_sealed = connection.secret_sealed
            connection.previous_secret_expires_at = now + timedelta(seconds=data.rollover_seconds)
        else:
            connection.previous_secret_sealed, connection.previous_secret_expires_at = None, None
        connection.secret_sealed = self.box.seal(secret)
        connection.secret_rotated_at = now
        if connection.kind in POLLED and connection.enabled:
            connection.next_poll_at = now
        await self.session.flush()
        await self._audit("source_connection.secret_rotated", connection, before)
        return connection, secret

    async def delete(self, connection_id: uuid.UUID) -> None:
        connection = await self.get(connection_id)
        await self._audit("source_connection.deleted", connection, _audited(connection))
        await self.repo.remove(connection)

    async def test_mapping(
        self, data: MappingTest, connection_id: uuid.UUID | None = None
    ) -> builtins.list[CloudEvent]:
        """What a sample payload would become on a connection (its mapping, or the one given), stored
        nowhere. Refusals name their fields as a real delivery's would."""
        connection = await self.get(connection_id) if connection_id is not None else None
        mapping = data.mapping if data.mapping is not msgspec.UNSET else (connection.mapping if connection else None)
        check_mapping(mapping)
        source = connection.source if connection else (data.source or "urn:andon:connection:test")
        event_type = connection.event_type if connection and data.event_type is None else data.event_type
        if event_type is not None and event_type not in CATALOGUE:
            raise field_error("event_type", f"unknown event type; see GET /api/v1/event-types ({len(CATALOGUE)} types)")
        found = ConnectionFound(
            id=connection.id if connection else new_id(),
            tenant_id=self.tenant.tenant_id,
            name=connection.name if connection else "test",
            kind=connection.kind if connection else "webhook",
            enabled=True,
            source=source,
            event_type=event_type,
            verifier="none",
            signature_header=None,
            signature_prefix="",
            digest_encoding="hex",
            tolerance_seconds=0,
            secret_sealed=None,
            previous_secret_sealed=None,
            previous_secret_expires_at=None,
            config=dict(connection.config) if connection else {},
            mapping=mapping,
        )
        events, _ = to_events(found, Delivery(body=msgspec.json.encode(data.payload)))
        return events

    async def deliveries(
        self, connection_id: uuid.UUID, *, limit: int, offset: int, outcome: str | None
    ) -> tuple[Sequence[WebhookDelivery], int]:
        connection = await self.get(connection_id)
        return await DeliveryRepository(self.session, self.tenant).for_connection(
            connection.id, limit=limit, offset=offset, outcome=outcome
        )


class SignatureError(AndonError):
    """401 for every signature failure: one message, and no Bearer challenge (no key would help)."""

    status_code = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


# Charges a tenant's event budget; raises 429 when it is spent.
Limit = Callable[[uuid.UUID, int], Awaitable[None]]

NOT_SIGNED = "the delivery's signature does not verify: wrong secret, or a timestamp outside the allowed window"


class WebhookReceiver:
    """A vendor's signed request to ``/hooks/<id>``.

    Replays: a Standard Webhooks delivery outside the timestamp window is refused; inside it, the
    event id is the CloudEvent's own id or the ``webhook-id`` (else a hash of the body), so the unique
    (tenant, source, id) of events answers a repeat with the original acceptance and stores nothing new.
    """

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], box: SecretBox, limit: Limit | None = None
    ) -> None:
        self.intake = ConnectionIntake(sessionmaker)
        self.box = box
        self.limit = limit

    async def receive(self, connection_id: uuid.UUID, headers: Mapping[str, str], body: bytes) -> Receipt:
        headers = {name.lower(): value for name, value in headers.items()}
        found = await self.intake.find(connection_id)
        if found is None or found.kind != "webhook":
            raise NotFoundError(NOT_HERE)
        webhook_id = headers.get("webhook-id") or None
        delivery = Delivery(body=body, reference=webhook_id, delivery_id=webhook_id or hashlib.sha256(body).hexdigest())
        if found.enabled:
            try:
                self._verify(found, headers, body, utcnow())
            except Refused as refusal:
                await self.intake.refuse(found, delivery, refusal)
                raise refusal.answer from None
            # Charged only for deliveries that prove their sender: unsigned junk sent to a known hook
            # cannot spend its tenant's budget. One event per delivery (a mapping's split is known later).
            if self.limit is not None:
                await self.limit(found.tenant_id, 1)
        return await self.intake.receive(found, delivery, channel=CHANNEL)

    def _verify(self, found: ConnectionFound, headers: dict[str, str], body: bytes, now: datetime) -> None:
        in_force = [self.box.open(s) for s in (found.secret_sealed,) if s]
        if found.previous_secret_sealed and found.previous_secret_expires_at and found.previous_secret_expires_at > now:
            in_force.append(self.box.open(found.previous_secret_sealed))
        config = verifiers.VerifierConfig(
            verifier=found.verifier,
            signature_header=found.signature_header,
            signature_prefix=found.signature_prefix,
            digest_encoding=found.digest_encoding,
            tolerance_seconds=found.tolerance_seconds,
        )
        try:
            verifiers.verify(config, in_force, headers, body, now)
        except verifiers.SignatureRefused as exc:
            raise Refused(SignatureError(NOT_SIGNED), exc.reason) from None
