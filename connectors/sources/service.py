"""Source connections: their administration inside a tenant, and the webhook deliveries they receive.

A delivery reaches ``/hooks/{connection_id}`` with no credentials but its signature. The connection
is read in the authentication lookup mode (the only thing known is its id); verification, parsing,
the events and the delivery log then happen inside the connection's tenant, as that connection.

Replays: a Standard Webhooks delivery outside the timestamp window is refused; inside it, the event
id is the CloudEvent's own id or the ``webhook-id`` (else a hash of the body), so the unique
(tenant, source, id) of events answers a repeat with the original acceptance and stores nothing new.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.sources import verifiers
from andon.connectors.sources.models import SECRET_COLUMNS, SourceConnection, WebhookDelivery
from andon.connectors.sources.repository import (
    ConnectionFound,
    ConnectionLookup,
    DeliveryRepository,
    SourceConnectionRepository,
)
from andon.connectors.sources.schemas import ConnectionCreate, ConnectionUpdate, SecretRotate
from andon.platform.api.schemas import apply_update
from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.auth.rbac import P
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.db.ids import new_id
from andon.platform.db.scope import apply_principal_scope
from andon.platform.db.types import utcnow
from andon.platform.events.catalogue import CATALOGUE
from andon.platform.events.envelope import CloudEvent, parse_structured
from andon.platform.events.ingress import Accepted, EventIngress
from andon.platform.http.errors import (
    AndonError,
    ConflictError,
    NotFoundError,
    field_error,
)
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind
from andon.tenants.orgs.service import CustomerService, org_is_active
from andon.tenants.plant.references import resolve_plant_refs

CHANNEL = "webhook"
# Counters and the last delivery are traffic, not settings: they stay out of the audit trail.
_NOT_AUDITED = SECRET_COLUMNS | {
    "deliveries_accepted",
    "deliveries_duplicate",
    "deliveries_refused",
    "last_delivery_at",
    "last_delivery_outcome",
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
    def _check(event_type: str | None, verifier: str, signature_header: str | None) -> None:
        if event_type is not None and event_type not in CATALOGUE:
            raise field_error("event_type", f"unknown event type; see GET /api/v1/event-types ({len(CATALOGUE)} types)")
        if verifier != verifiers.STANDARD and not signature_header:
            raise field_error("signature_header", f"the {verifier} verifier reads the signature from a header: name it")

    def _secret(self, verifier: str, chosen: str | None) -> str:
        if chosen is None:
            return verifiers.generate_secret(verifier)
        problem = verifiers.secret_problem(verifier, chosen)
        if problem:
            raise field_error("secret", problem)
        return chosen

    async def create(self, data: ConnectionCreate) -> tuple[SourceConnection, str]:
        self._check(data.event_type, data.verifier, data.signature_header)
        await self._name_free(data.name)
        secret = self._secret(data.verifier, data.secret)
        connection_id = new_id()
        connection = await self.repo.add(
            SourceConnection(
                id=connection_id,
                name=data.name,
                kind=data.kind,
                source=data.source or default_source(connection_id),
                event_type=data.event_type,
                verifier=data.verifier,
                # Standard Webhooks fixes its headers; a header named for it would only mislead.
                signature_header=data.signature_header if data.verifier != verifiers.STANDARD else None,
                signature_prefix=data.signature_prefix if data.verifier != verifiers.STANDARD else "",
                digest_encoding=data.digest_encoding,
                secret_sealed=self.box.seal(secret),
                tolerance_seconds=data.tolerance_seconds,
                enabled=data.enabled,
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
        self._check(event_type, connection.verifier, header)
        apply_update(connection, data)
        if connection.verifier == verifiers.STANDARD:
            connection.signature_header, connection.signature_prefix = None, ""
        await self.session.flush()
        await self._audit("source_connection.updated", connection, before)
        return connection

    async def rotate(self, connection_id: uuid.UUID, data: SecretRotate) -> tuple[SourceConnection, str]:
        """The new secret signs from now on; the one it replaces is still accepted for the rollover
        (a secret older than that is dropped at once: two secrets in force at most)."""
        connection = await self.get(connection_id)
        before = _audited(connection)
        secret = self._secret(connection.verifier, data.secret)
        now = utcnow()
        if data.rollover_seconds > 0:
            connection.previous_secret_sealed = connection.secret_sealed
            connection.previous_secret_expires_at = now + timedelta(seconds=data.rollover_seconds)
        else:
            connection.previous_secret_sealed, connection.previous_secret_expires_at = None, None
        connection.secret_sealed = self.box.seal(secret)
        connection.secret_rotated_at = now
        await self.session.flush()
        await self._audit("source_connection.secret_rotated", connection, before)
        return connection, secret

    async def delete(self, connection_id: uuid.UUID) -> None:
        connection = await self.get(connection_id)
        await self._audit("source_connection.deleted", connection, _audited(connection))
        await self.repo.remove(connection)

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


NOT_HERE = "no such webhook connection, or it is disabled"
NOT_SIGNED = "the delivery's signature does not verify: wrong secret, or a timestamp outside the allowed window"


@dataclass(frozen=True, slots=True)
class Receipt:
    accepted: list[Accepted]

    @property
    def new(self) -> bool:
        return any(not a.duplicate for a in self.accepted)


class WebhookReceiver:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
        self.sessionmaker = sessionmaker
        self.box = box

    async def receive(self, connection_id: uuid.UUID, headers: Mapping[str, str], body: bytes) -> Receipt:
        headers = {name.lower(): value for name, value in headers.items()}
        async with self.sessionmaker() as session:
            async with session.begin():
                found = await ConnectionLookup(session).by_id(connection_id)
            if found is None:
                raise NotFoundError(NOT_HERE)
            try:
                async with session.begin():
                    tenant = await self._enter(session, found)
                    accepted = await self._accept(session, tenant, found, headers, body)
                    duplicate = all(a.duplicate for a in accepted)
                    await self._log(
                        session,
                        tenant,
                        found,
                        headers,
                        outcome="duplicate" if duplicate else "accepted",
                        status=200 if duplicate else 201,
                        event_ids=[str(a.id) for a in accepted],
                    )
                return Receipt(accepted)
            except _Refused as refusal:
                # The attempt's transaction is gone, with anything it wrote; the refusal is logged
                # in a transaction of its own.
                await self._log_refusal(session, found, headers, refusal.answer.status_code, refusal.reason)
                raise refusal.answer from None
            except _Unlogged:
                raise
            except AndonError as refusal:
                await self._log_refusal(session, found, headers, refusal.status_code, refusal.detail)
                raise

    async def _enter(self, session: AsyncSession, found: ConnectionFound) -> TenantContext:
        """The connection's tenant, entered as the connection itself (it may only send events)."""
        principal = Principal(
            subject_kind=SubjectKind.SERVICE,
            subject_id=found.id,
            label=f"webhook connection {found.name}",
            org_kind=OrgKind.CUSTOMER,
            customer_id=found.tenant_id,
            permissions=frozenset({P.EVENTS_WRITE}),
        )
        await apply_principal_scope(session, principal)
        if not await org_is_active(session, principal):
            # A suspended customer takes no deliveries; the sender learns no more than for a wrong id.
            raise _Unlogged(NOT_HERE)
        return await CustomerService(session, principal).open_tenant(found.tenant_id)

    async def _accept(
        self,
        session: AsyncSession,
        tenant: TenantContext,
        found: ConnectionFound,
        headers: dict[str, str],
        body: bytes,
    ) -> list[Accepted]:
        if not found.enabled:
            raise _Refused(NotFoundError(NOT_HERE), "the connection is disabled")
        now = utcnow()
        in_force = [self.box.open(found.secret_sealed)]
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
            raise _Refused(SignatureError(NOT_SIGNED), exc.reason) from None
        event = to_event(found, headers, body)
        ingress = EventIngress(session, tenant, resolve_plant_refs)
        return await ingress.accept([event], channel=CHANNEL, raw=[body], connection_id=found.id)

    async def _log(
        self,
        session: AsyncSession,
        tenant: TenantContext,
        found: ConnectionFound,
        headers: dict[str, str],
        *,
        outcome: str,
        status: int,
        reason: str | None = None,
        event_ids: list[str] | None = None,
    ) -> None:
        at = utcnow()
        webhook_id = headers.get("webhook-id") or None
        await DeliveryRepository(session, tenant).add(
            WebhookDelivery(
                connection_id=found.id,
                webhook_id=webhook_id[:255] if webhook_id else None,
                outcome=outcome,
                status_code=status,
                reason=reason[:500] if reason else None,
                event_ids=event_ids or [],
            )
        )
        await SourceConnectionRepository(session, tenant).count_delivery(found.id, outcome, at)

    async def _log_refusal(
        self, session: AsyncSession, found: ConnectionFound, headers: dict[str, str], status: int, reason: str
    ) -> None:
        async with session.begin():
            tenant = await self._enter(session, found)
            await self._log(session, tenant, found, headers, outcome="refused", status=status, reason=reason)


class _Unlogged(NotFoundError):
    """Refused before the tenant could be entered: there is nowhere to log it."""


class _Refused(Exception):
    """A refusal whose logged reason says more than the answer the sender gets."""

    def __init__(self, answer: AndonError, reason: str) -> None:
        super().__init__(reason)
        self.answer = answer
        self.reason = reason


def to_event(found: ConnectionFound, headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """The delivery as one event: a structured CloudEvent as it is (in the connection's source), or
    any other JSON as the ``data`` of the connection's event type."""
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise field_error("$", f"the body is not JSON ({exc})") from None
    if isinstance(payload, dict) and "specversion" in payload:
        # The connection's secret vouches for its own source and what lies under it, never for
        # another's: otherwise it could forge (or pre-empt the ids of) events of other senders.
        payload.setdefault("source", found.source)
        event = parse_structured(msgspec.json.encode(payload))
        if event.source != found.source and not event.source.startswith(found.source + "/"):
            raise field_error("source", f"events on this connection come from {found.source} (or {found.source}/...)")
        return event
    if found.event_type is None:
        raise field_error(
            "specversion", "this connection takes CloudEvents only; set its event_type to accept other JSON"
        )
    event_id = headers.get("webhook-id") or hashlib.sha256(body).hexdigest()
    envelope = {
        "id": event_id,
        "source": found.source,
        "specversion": "1.0",
        "type": found.event_type,
        "datacontenttype": "application/json",
        "data": payload,
    }
    return parse_structured(msgspec.json.encode(envelope))
