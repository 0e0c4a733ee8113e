"""Driving the outbox relay and a real Dramatiq worker from a test, deterministically."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
from litestar import Litestar

from andon.platform.engine.executor import STEP_QUEUE
from andon.platform.events.relay import QUEUE, relay_once
from andon.platform.workers.actors import start_worker


async def relay_all(app: Litestar) -> int:
    """Move every pending outbox row to the broker; how many moved."""
    moved = 0
    while sent := await relay_once(app.state.sessionmaker, app.state.broker):
        moved += sent
    return moved


@contextmanager
def running_worker(app: Litestar) -> Iterator[dramatiq.Worker]:
    worker = start_worker(app.state.broker, threads=1)
    try:
        yield worker
    finally:
        worker.stop()


def drain(app: Litestar, seconds: float = 30) -> None:
    """Wait until the worker has finished every message sent so far: the events, then the workflow
    steps they started (each step's message is sent before the one before it finishes)."""
    app.state.broker.join(QUEUE, timeout=int(seconds * 1000))
    app.state.broker.join(STEP_QUEUE, timeout=int(seconds * 1000))
