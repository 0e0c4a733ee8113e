"""Dramatiq actors, declared on a given broker, and the in-process worker of embedded mode.

Actors run on Dramatiq's AsyncIO middleware loop, in another thread than the web app's, so they
open their own engine there: asyncpg connections belong to the loop that made them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import dramatiq
import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from dramatiq.middleware.asyncio import AsyncIO
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from andon.platform.config.settings import Settings
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.engine.capabilities import Call, Capabilities
from andon.platform.engine.dispatch import broker_sender, step_message
from andon.platform.engine.executor import STEP_ACTOR, STEP_QUEUE, Executor, StepMessage
from andon.platform.engine.page_delivery import PAGE_ACTOR, PAGE_QUEUE, PageDelivery
from andon.platform.events import processing
from andon.platform.events.ingress import PROCESS_ACTOR
from andon.platform.events.relay import QUEUE
from andon.platform.workers.fairness import MemorySlots, RedisSlots, Slots

log = structlog.get_logger(__name__)


class Closing(Protocol):
    async def close(self) -> None: ...


class Connections(Closing, Protocol):
    """The capability that calls the tenants' own connections, with the clients it holds open."""

    async def capability(self, call: Call) -> Any: ...


# Given the worker loop's sessionmaker, the tenants' connections, made in that loop.
ConnectionsFactory = Callable[[async_sessionmaker[AsyncSession]], Connections]


class WorkerDatabase:
    """The worker loop's own engine, made on first use inside that loop, and what else lives there."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._closing: list[Closing] = []

    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            # Every step and event is a message: a dropped connection fails one message (steps are
            # swept and sent again, events retried), which is cheaper than a ping per transaction.
            self._engine = create_engine(
                self.settings.database, pool_size=self.settings.workers.threads + 2, pre_ping=False
            )
            self._sessionmaker = create_sessionmaker(self._engine)
        return self._sessionmaker

    def close_with(self, resource: Closing) -> None:
        self._closing.append(resource)

    async def dispose(self) -> None:
        """Closes, in the worker's loop, what was opened there: another loop could not."""
        closing, self._closing = self._closing, []
        for resource in closing:
            try:
                await resource.close()
            except Exception as exc:  # one stuck client must not keep the engine open
                log.warning("worker_resource_not_closed", resource=type(resource).__name__, error=repr(exc))
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._sessionmaker = None


class _DisposeInLoop(Middleware):
    """Disposes the worker loop's resources once its threads stopped, before the loop itself stops.

    Dramatiq calls ``after_`` hooks in reverse order, so this (added after ``AsyncIO``) runs first.
    """

    def __init__(self, database: WorkerDatabase) -> None:
        self.database = database

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop = get_event_loop_thread()
        if loop is not None:
            loop.run_coroutine(self.database.dispose())


def declare_actors(
    broker: dramatiq.Broker,
    settings: Settings,
    capabilities: Capabilities,
    connections: ConnectionsFactory | None = None,
) -> WorkerDatabase:
    if not any(isinstance(m, AsyncIO) for m in broker.middleware):
        broker.add_middleware(AsyncIO())
    database = WorkerDatabase(settings)
    broker.add_middleware(_DisposeInLoop(database))

    send = broker_sender(broker)
    executor: list[Executor] = []

    def engine() -> Executor:
        # Made inside the worker's event loop, with that loop's engine and HTTP client.
        if not executor:
            if connections is not None:
                made = connections(database.sessionmaker())
                database.close_with(made)
                capabilities.route_connections(made.capability)
            executor.append(
                Executor(database.sessionmaker(), capabilities, send, lease_seconds=settings.engine.lease_seconds)
            )
        return executor[0]

    async def process_event(tenant_id: str, partner_id: str, event_id: str) -> None:
        async with database.sessionmaker()() as session, session.begin():
            messages = await processing.process_event(
                session, uuid.UUID(tenant_id), uuid.UUID(partner_id), uuid.UUID(event_id)
            )
        await send(messages or [])

    pages: list[PageDelivery] = []

    def page_delivery() -> PageDelivery:
        if not pages:
            engine()  # routes the tenants' connections into the capabilities, in this loop
            pages.append(PageDelivery(database.sessionmaker(), capabilities, settings.http.base_url))
        return pages[0]

    async def deliver_page(tenant_id: str, partner_id: str, page_id: str) -> None:
        """An escalation page through its ladder's channels (``engine/page_delivery.py``).
        Idempotent by "compute what is missing and do only that": a page no longer pending, or held
        by another worker, is left alone; only the channels not yet settled are called, each with
        its own idempotency key; a page that is gone is nothing to do."""
        await page_delivery().deliver(uuid.UUID(tenant_id), uuid.UUID(partner_id), uuid.UUID(page_id))

    slots = tenant_slots(settings)
    if slots is not None:
        database.close_with(slots)

    async def run_step(tenant_id: str, partner_id: str, run_id: str, step_key: str, attempt: int) -> None:
        message = StepMessage(uuid.UUID(tenant_id), uuid.UUID(partner_id), uuid.UUID(run_id), step_key, attempt)
        if slots is None:
            await engine().run_step(message)
            return
        token = f"{run_id}:{step_key}:{attempt}"
        if not await slots.acquire(tenant_id, token, json.dumps(message.args())):
            return  # parked: sent again when a step of its tenant gives a slot back
        try:
            await engine().run_step(message)
        finally:
            parked = await slots.release(tenant_id, token)
            if parked is not None:
                again = StepMessage(*_step_args(json.loads(parked)))
                await asyncio.to_thread(broker.enqueue, step_message(again))

    # Dramatiq's stubs do not accept a coroutine function, which its AsyncIO middleware runs.
    dramatiq.Actor(
        process_event,  # type: ignore[arg-type]
        broker=broker,
        actor_name=PROCESS_ACTOR,
        queue_name=QUEUE,
        priority=0,
        options={"max_retries": 20},
    )
    dramatiq.Actor(
        run_step,  # type: ignore[arg-type]
        broker=broker,
        actor_name=STEP_ACTOR,
        queue_name=STEP_QUEUE,
        priority=0,
        # A failed step is the engine's to retry (with its policy); the message is not retried.
        options={"max_retries": 0},
    )
    dramatiq.Actor(
        deliver_page,  # type: ignore[arg-type]
        broker=broker,
        actor_name=PAGE_ACTOR,
        queue_name=PAGE_QUEUE,
        priority=0,
        # A failed channel is retried by the page's own timer, with backoff; the message is not.
        options={"max_retries": 0},
    )
    return database


def _step_args(args: list[Any]) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, str, int]:
    tenant_id, partner_id, run_id, step_key, attempt = args
    return uuid.UUID(tenant_id), uuid.UUID(partner_id), uuid.UUID(run_id), str(step_key), int(attempt)


def tenant_slots(settings: Settings) -> Slots | None:
    limit = settings.engine.tenant_concurrency
    if limit <= 0:
        return None
    # A slot lapses a little after its step's lease: a dead worker's slots free themselves as soon as
    # its steps may be taken over. (A step that outruns it lets its tenant exceed the share a while.)
    lease = settings.engine.lease_seconds + 5
    if settings.redis.url:
        return RedisSlots(settings.redis.url, settings.redis.namespace, limit, lease)
    return MemorySlots(limit, lease)


def start_worker(broker: dramatiq.Broker, threads: int) -> dramatiq.Worker:
    # An idle consumer looks at its queue again after this many milliseconds: each hop of a step
    # (event, first step, next step) waits up to that long, so it is kept short.
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    worker.start()
    return worker
