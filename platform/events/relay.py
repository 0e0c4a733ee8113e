"""The outbox relay: moves committed outbox rows to the broker, oldest first.

A commit that adds outbox rows notifies the relays (PostgreSQL LISTEN/NOTIFY), so they send at once
whichever process committed; they also poll, in case a notification is missed. A row is deleted
only in the transaction that sent it; if the broker refuses (Redis down), the
transaction rolls back and the rows wait for the next attempt. A crash between the send and the
commit sends a message twice, which the consumer absorbs (it claims each event once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg  # type: ignore[import-untyped]
import dramatiq
import structlog
from dramatiq import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.db.engine import postgres_connect_args
from andon.platform.events.repository import OUTBOX_CHANNEL, OutboxRepository
from andon.platform.workers.background import BackgroundLoop

log = structlog.get_logger("andon.relay")
BATCH = 500
QUEUE = "events"


async def relay_once(sessionmaker: async_sessionmaker[AsyncSession], broker: dramatiq.Broker) -> int:
    """Send one batch; the number sent (0: nothing pending). Raises when the broker refuses."""
    async with sessionmaker() as session, session.begin():
        outbox = OutboxRepository(session)
        await outbox.enter_relay_mode()
        rows = await outbox.pending(BATCH)
        if not rows:
            return 0
        messages: list[Message[object]] = [
            Message(
                queue_name=QUEUE,
                actor_name=row.actor,
                args=tuple(row.args),
                kwargs={},
                options={},
                message_id=str(row.message_id),
            )
            for row in rows
        ]
        # The broker client is blocking; one thread for the whole batch keeps the event loop serving
        # requests without a thread hop per message.
        await asyncio.to_thread(enqueue_all, broker, messages)
        await outbox.remove([row.id for row in rows])
        return len(rows)


def enqueue_all(broker: dramatiq.Broker, messages: list[Message[object]]) -> None:
    for message in messages:
        broker.enqueue(message)


class Relay(BackgroundLoop):
    """Runs beside the web app (or in ``andon worker``): drains the outbox, sleeps until woken by a
    commit or for ``idle`` seconds, and backs off while the broker is down."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: dramatiq.Broker,
        idle: float = 0.5,
        *,
        listen: bool = False,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.idle = idle
        # Only a relay in another process than the committers needs to LISTEN (``andon worker``);
        # beside the web app, the commit wakes it directly.
        self.listen = listen
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._listen_after = 0.0
        self.sent = 0
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        """On PostgreSQL, a connection that LISTENs for commits that add outbox rows (in any process);
        without it (SQLite, or it failed) the relay still polls every ``idle`` seconds."""
        engine = self.sessionmaker.kw.get("bind")
        if not self.listen or engine is None or engine.dialect.name != "postgresql":
            return
        if time.monotonic() < self._listen_after:
            return
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listen_after = time.monotonic() + 10.0
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            connection = await asyncpg.connect(dsn, timeout=5, **postgres_connect_args(engine.url))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("relay_listen_failed", error=f"{type(exc).__name__}: {exc}")
            return
        try:
            await connection.add_listener(OUTBOX_CHANNEL, lambda *_: self.wake())
        except BaseException as exc:  # cancelled (stopping) or refused: never leave it half open
            connection.terminate()
            if not isinstance(exc, Exception):
                raise
            log.warning("relay_listen_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self._listener = connection

    async def stop(self) -> None:
        await super().stop()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None

    async def run(self) -> None:
        backoff = self.idle
        while True:
            await self._listen()
            try:
                sent = await relay_once(self.sessionmaker, self.broker)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker or the database is away: retry later, lose nothing
                self.failures += 1
                log.warning("relay_failed", error=f"{type(exc).__name__}: {exc}", retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = self.idle
            self.sent += sent
            if sent:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle)
