"""Dramatiq actors, declared on a given broker, and the in-process worker of embedded mode.

Actors run on Dramatiq's AsyncIO middleware loop, in another thread than the web app's, so they
open their own engine there: asyncpg connections belong to the loop that made them.
"""

from __future__ import annotations

import uuid

import dramatiq
from dramatiq.middleware.asyncio import AsyncIO
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from andon.platform.config.settings import Settings
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.events import processing
from andon.platform.events.ingress import PROCESS_ACTOR
from andon.platform.events.relay import QUEUE


class WorkerDatabase:
    """The worker loop's own engine, made on first use inside that loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None

    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            self._engine = create_engine(self.settings.database)
            self._sessionmaker = create_sessionmaker(self._engine)
        return self._sessionmaker

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._sessionmaker = None


def declare_actors(broker: dramatiq.Broker, settings: Settings) -> WorkerDatabase:
    if not any(isinstance(m, AsyncIO) for m in broker.middleware):
        broker.add_middleware(AsyncIO())
    database = WorkerDatabase(settings)

    async def process_event(tenant_id: str, partner_id: str, event_id: str) -> None:
        async with database.sessionmaker()() as session, session.begin():
            await processing.process_event(session, uuid.UUID(tenant_id), uuid.UUID(partner_id), uuid.UUID(event_id))

    # Dramatiq's stubs do not accept a coroutine function, which its AsyncIO middleware runs.
    dramatiq.Actor(
        process_event,  # type: ignore[arg-type]
        broker=broker,
        actor_name=PROCESS_ACTOR,
        queue_name=QUEUE,
        priority=0,
        options={"max_retries": 20},
    )
    return database


def start_worker(broker: dramatiq.Broker, threads: int) -> dramatiq.Worker:
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=200)
    worker.start()
    return worker
