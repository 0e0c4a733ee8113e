"""Andon's end of the relay: an agent connects out from the plant, proves it holds a relay connection's
token, and streams its queued events; each is stored through the intake (entering the tenant as the
connection, as every channel does) and committed before it is acknowledged.

Order: one link reads and stores its events one after another, and acknowledges each in that order;
the agent sends in queue order, so events are stored in the order the plant handed them over. The
agent may send ahead of the acknowledgements (a window): that saves the round trip per event without
changing the order, since storing stays sequential.

Nothing twice: an event keeps its entry id across resends. A CloudEvent keeps its own id; any other
payload gets the entry id as its event id (the mapping's ``delivery_id``), so a resent entry meets the
unique (tenant, source, id) of events and is answered ``duplicate``.

An event the intake refuses (not valid for its type, a source outside the connection's) is
acknowledged as refused with the reason, and logged on the connection: sending it again would not
change the answer. A refusal of the connection itself (disabled, customer suspended) closes the link
instead, so the agent keeps the events until it is let in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
import structlog
from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.onprem.calls import LocalRelayCalls, RedisCallPump
from andon.connectors.onprem.links import AgentLink, AgentLinks
from andon.connectors.onprem.protocol import (
    CLOSE_REFUSED,
    CLOSE_SUPERSEDED,
    Ack,
    CallFailed,
    CallResult,
    EventMessage,
    Hello,
    RelayRefused,
    decode_from_agent,
    encode,
)
from andon.connectors.onprem.tokens import connection_of
from andon.connectors.sources.intake import NOT_HERE, ConnectionIntake, Delivery, Unlogged
from andon.connectors.sources.repository import ConnectionFound
from andon.platform.config.settings import RedisSettings
from andon.platform.crypto.secretbox import SecretBox, SecretBoxError
from andon.platform.db.errors import is_data_exception
from andon.platform.db.types import utcnow
from andon.platform.http.errors import AndonError, AuthenticationError, NotFoundError, TooManyRequestsError
from andon.platform.observability.metrics import count_delivery, count_events

log = structlog.get_logger("andon.relay")
CHANNEL = "relay"
KIND = "relay"
PATH = "/api/v1/relay/connect"
BAD_TOKEN = "invalid or rotated relay token"  # noqa: S105 - a refusal message, not a secret
# How often a link reads its connection again: a disabled connection, a rotated token, a new mapping.
RECHECK_SECONDS = 15.0

# Charges a customer a number of events, or raises TooManyRequestsError (the app's rate limiter).
Limit = Callable[[uuid.UUID, int], Awaitable[None]]


class LinkRefused(Exception):
    def __init__(self, refusal: AndonError) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


class TokenUnreadable(AndonError):
    """Andon's own fault (the key the token was sealed with is not configured): the agent tries again."""

    status_code = 503
    title = "Service unavailable"
    type_slug = "service-unavailable"


def _holds_token(found: ConnectionFound, token: str, box: SecretBox, now: datetime) -> bool:
    in_force = [found.secret_sealed] if found.secret_sealed else []
    if found.previous_secret_sealed and found.previous_secret_expires_at and found.previous_secret_expires_at > now:
        in_force.append(found.previous_secret_sealed)
    try:
        opened = [box.open(sealed) for sealed in in_force]
    except SecretBoxError as exc:
        log.error("relay_token_unreadable", connection_id=str(found.id), error=str(exc))
        raise TokenUnreadable("Andon cannot check relay tokens at the moment; the agent will try again") from None
    return any(hmac.compare_digest(secret.encode(), token.encode()) for secret in opened)


class RelayEndpoint:
    """The agents of every customer that are connected to this process."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
        *,
        limit: Limit | None = None,
        on_events: Callable[[], None] | None = None,
        redis: RedisSettings | None = None,
    ) -> None:
        self.intake = ConnectionIntake(sessionmaker)
        self.box = box
        self.limit = limit
        # Called after an event was stored (the outbox relay's wake).
        self.on_events = on_events
        self.links = AgentLinks()
        self.recheck_seconds = RECHECK_SECONDS
        # Calls on systems in the plants: from this process's own loops, or from workers through Redis.
        self.calls = LocalRelayCalls(self.links)
        self.pump = RedisCallPump(redis.url, redis.namespace, box, self.links) if redis and redis.url else None

    async def authenticate(self, authorization: str | None) -> ConnectionFound:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("send 'Authorization: Bearer <relay token>'")
        connection_id = connection_of(token)
        found = await self.intake.find(connection_id) if connection_id is not None else None
        if found is None or found.kind != KIND or not _holds_token(found, token, self.box, utcnow()):
            raise AuthenticationError(BAD_TOKEN)
        if not found.enabled:
            raise NotFoundError("this relay connection is disabled in Andon")
        return found

    async def serve(self, socket: WebSocket) -> None:  # type: ignore[type-arg]
        await socket.accept()
        authorization = socket.headers.get("authorization")
        try:
            found = await self.authenticate(authorization)
        except AndonError as refusal:
            await self._refuse(socket, refusal)
            return
        lock = asyncio.Lock()

        async def send(frame: str) -> None:
            # Acknowledgements and calls go out from different tasks; one frame at a time.
            async with lock:
                await socket.send_text(frame)

        link = await self.links.open(found.id, found.tenant_id, send)
        pump = asyncio.create_task(self.pump.run(found.tenant_id)) if self.pump is not None else None
        context = {"connection_id": str(found.id), "tenant_id": str(found.tenant_id)}
        log.info("relay_agent_connected", **context)
        try:
            await send(encode(Hello(connection=found.name, source=found.source)))
            await self._stream(socket, link, found, authorization)
        except LinkRefused as refused:
            log.info("relay_agent_refused", reason=refused.refusal.detail, **context)
            # Out of the links before the goodbye, which may wait on a slow socket: no call goes to it.
            self.links.close(link)
            await self._refuse(socket, refused.refusal)
        except WebSocketDisconnect:
            pass
        except Exception as exc:  # the database away, or a fault: the agent resends what is unacknowledged
            log.warning("relay_link_failed", error=f"{type(exc).__name__}: {exc}", **context)
            await self._close(socket, 1011, "Andon could not store the event; it will be asked again")
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            self.links.close(link)
            log.info("relay_agent_disconnected", **context)

    async def _stream(
        self,
        socket: WebSocket,  # type: ignore[type-arg]
        link: AgentLink,
        found: ConnectionFound,
        authorization: str | None,
    ) -> None:
        frames = _Frames(socket, link)
        checked = time.monotonic()
        try:
            while True:
                # Woken at least every recheck period, so an idle link learns of a disabled connection
                # too (and takes no more calls for it).
                frame = await frames.next(self.recheck_seconds)
                if frame is None and link.stopping.is_set():
                    await self._close(socket, CLOSE_SUPERSEDED, "another connection of this agent took over")
                    return
                if time.monotonic() - checked >= self.recheck_seconds:
                    try:
                        found = await self.authenticate(authorization)
                    except AndonError as refusal:
                        raise LinkRefused(refusal) from None
                    checked = time.monotonic()
                if frame is None:
                    continue
                try:
                    message = decode_from_agent(frame)
                except msgspec.ValidationError as exc:
                    raise LinkRefused(AndonError(f"not a relay protocol message: {exc}")) from None
                except msgspec.DecodeError as exc:
                    raise LinkRefused(AndonError(f"a frame is not JSON: {exc}")) from None
                if isinstance(message, CallResult | CallFailed):
                    link.answered(message)
                    continue
                ack = await self._store(found, message)
                await link.send(encode(ack))
        finally:
            frames.close()

    async def _store(self, found: ConnectionFound, message: EventMessage) -> Ack:
        delivery = Delivery(body=bytes(message.body), reference=f"relay #{message.seq}", delivery_id=message.id)
        await self._charge(found.tenant_id)
        try:
            receipt = await self.intake.receive(found, delivery, channel=CHANNEL)
        except Unlogged as refusal:
            raise LinkRefused(refusal) from None
        except AndonError as refusal:
            if refusal.detail == NOT_HERE:
                raise LinkRefused(refusal) from None
            count_delivery(CHANNEL, refusal.status_code)
            return Ack(seq=message.seq, outcome="refused", status=refusal.status_code, detail=refusal.detail)
        except DBAPIError as exc:
            if not is_data_exception(exc):
                raise
            count_delivery(CHANNEL, 422)
            detail = "a value in the event cannot be stored (for example a NUL character in text)"
            return Ack(seq=message.seq, outcome="refused", status=422, detail=detail)
        count_delivery(CHANNEL, "accepted" if receipt.new else "duplicate")
        count_events(CHANNEL, receipt.new, receipt.duplicates)
        if receipt.new and self.on_events is not None:
            self.on_events()
        return Ack(seq=message.seq, outcome="stored" if receipt.new else "duplicate")

    async def _charge(self, tenant_id: uuid.UUID) -> None:
        """Over the customer's event limit the link waits: the agent keeps the events queued (a
        refusal would drop what cannot be sent again)."""
        if self.limit is None:
            return
        while True:
            try:
                await self.limit(tenant_id, 1)
                return
            except TooManyRequestsError as exc:
                await asyncio.sleep(float(exc.extra.get("retry_after", 1)))

    async def _refuse(self, socket: WebSocket, refusal: AndonError) -> None:  # type: ignore[type-arg]
        try:
            await socket.send_text(encode(RelayRefused(status=refusal.status_code, detail=refusal.detail)))
        except (WebSocketDisconnect, OSError):
            return
        await self._close(socket, CLOSE_REFUSED, refusal.detail[:120])

    @staticmethod
    async def _close(socket: WebSocket, code: int, reason: str) -> None:  # type: ignore[type-arg]
        try:
            async with asyncio.timeout(5):
                await socket.close(code=code, reason=reason)
        except (WebSocketDisconnect, OSError, RuntimeError, TimeoutError):
            # Already gone (a cut link): nothing to say goodbye to.
            pass


class _Frames:
    """A link's incoming frames. The read in progress is kept across waits, so a wait that ends
    (the recheck period, a newer link) loses no frame that was arriving."""

    def __init__(self, socket: WebSocket, link: AgentLink) -> None:  # type: ignore[type-arg]
        self.socket = socket
        self.link = link
        self._receive: asyncio.Future[str] | None = None

    async def next(self, within: float) -> str | None:
        """The next text frame; None when none came ``within`` seconds or a newer link is taking over."""
        if self._receive is None:
            self._receive = asyncio.ensure_future(self.socket.receive_text())
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self.link.stopping.wait())
        waiting: set[asyncio.Future[Any]] = {self._receive, stopping}
        done, _ = await asyncio.wait(waiting, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if self._receive in done:
            receive, self._receive = self._receive, None
            return receive.result()
        return None

    def close(self) -> None:
        # Whatever the link would have read next is unacknowledged: the agent sends it again.
        if self._receive is not None:
            self._receive.cancel()
