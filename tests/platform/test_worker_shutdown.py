"""Stopping a worker closes what its actors opened, inside the worker's own event loop.

asyncpg and redis connections belong to the loop that opened them: closed from another loop (or
collected after theirs has stopped) they raise into whichever loop is running at the time.
"""

from __future__ import annotations

import asyncio

from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import text

from andon.platform.config.settings import Settings
from andon.platform.engine.capabilities import Call, Capabilities
from andon.platform.workers.actors import declare_actors, start_worker


class Recorder:
    """A tenant-connections stand-in that says in which loop it was made and closed."""

    def __init__(self) -> None:
        self.made_in: asyncio.AbstractEventLoop | None = None
        self.closed_in: asyncio.AbstractEventLoop | None = None

    async def capability(self, call: Call) -> None:
        return None

    async def close(self) -> None:
        self.closed_in = asyncio.get_running_loop()


def test_stopping_the_worker_disposes_its_engine_and_clients_in_its_own_loop(settings: Settings) -> None:
    broker = StubBroker()
    broker.emit_after("process_boot")
    recorder = Recorder()

    def connections(_sessionmaker: object) -> Recorder:
        recorder.made_in = asyncio.get_running_loop()
        return recorder

    database = declare_actors(broker, settings, Capabilities(), connections)
    worker = start_worker(broker, 1)
    try:
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None

        async def use_the_database() -> int:
            async with database.sessionmaker()() as session:
                value = int((await session.execute(text("select 1"))).scalar_one())
            # The executor (and with it the connections) is made on the first step.
            database.close_with(connections(database.sessionmaker()))
            return value

        assert loop_thread.run_coroutine(use_the_database()) == 1
        engine = database._engine
        assert engine is not None
        assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    finally:
        worker.stop()

    assert database._engine is None
    assert engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    assert recorder.closed_in is recorder.made_in is not None
