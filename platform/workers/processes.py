"""The production processes beside ``andon serve``: ``andon worker`` (Dramatiq actors, and an outbox
relay) and ``andon scheduler`` (timers, the sweep of stalled steps, the pollers, retention and
metering). Both stop cleanly on SIGTERM or SIGINT; killed outright, they lose nothing (the database
holds the state, the broker redelivers, the sweep sends again what was in flight)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from andon.connectors.ingress.pollers import PollScheduler
from andon.connectors.outbound.runtime import engine_connections
from andon.connectors.outbound.service import offered_capabilities
from andon.platform.config.settings import Settings
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.db.models_registry import load_all_models
from andon.platform.engine.capabilities import Capabilities
from andon.platform.engine.dispatch import broker_sender
from andon.platform.engine.page_delivery import page_sender, use_connections
from andon.platform.engine.run_timers import RunTimers
from andon.platform.engine.scheduler import Scheduler
from andon.platform.events.relay import Relay
from andon.platform.observability.logging import configure_logging
from andon.platform.workers.actors import declare_actors, start_worker
from andon.platform.workers.broker import build_broker
from andon.platform.workers.housekeeping import housekeeping_jobs
from andon.tenants.plant.on_duty import duty_people

log = structlog.get_logger("andon.process")


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_worker(settings: Settings, threads: int) -> None:
    configure_logging(settings.log_level, json=settings.log_json)
    load_all_models()  # the mapper resolves every foreign key (customers, ...) on first use
    broker = build_broker(settings)
    box = SecretBox(settings.encryption_keys())
    declare_actors(broker, settings, Capabilities(), engine_connections(settings, box))
    # Escalation pages go through the customers' own notify connections.
    use_connections(offered_capabilities)
    engine = create_engine(settings.database)
    relay = Relay(create_sessionmaker(engine), broker, listen=True)
    worker = start_worker(broker, threads)
    relay.start()
    log.info("worker_started", threads=threads)
    try:
        await _until_stopped()
    finally:
        await relay.stop()
        # Stopping the worker disposes the actors' engine inside the worker's own loop.
        await asyncio.to_thread(worker.stop)
        await engine.dispose()
        log.info("worker_stopped")


async def run_scheduler(settings: Settings) -> None:
    configure_logging(settings.log_level, json=settings.log_json)
    load_all_models()
    broker = build_broker(settings)
    engine = create_engine(settings.database)
    scheduler = Scheduler(
        create_sessionmaker(engine),
        broker_sender(broker),
        tick=settings.engine.scheduler_tick_seconds,
        stalled_after=settings.engine.stalled_after_seconds,
        # Escalation ladders page whoever the tenants domain says is on shift.
        run_timers=RunTimers(duty_people, page_sender(broker)),
    )
    # Pollers fetch for vendors that cannot push; several schedulers share them by lease.
    polls = PollScheduler(create_sessionmaker(engine), SecretBox(settings.encryption_keys()), settings)
    # Several schedulers may run housekeeping at once: the sweeps take what is left, and the usage
    # collector appends each fact once whoever reads it.
    housekeeping = housekeeping_jobs(create_sessionmaker(engine), settings)
    scheduler.start()
    for job in housekeeping:
        job.start()
    if settings.polling.enabled:
        polls.start()
    log.info("scheduler_started")
    try:
        await _until_stopped()
    finally:
        await polls.stop()
        for job in housekeeping:
            await job.stop()
        await scheduler.stop()
        with contextlib.suppress(Exception):
            await engine.dispose()
        log.info("scheduler_stopped", fired=scheduler.fired, requeued=scheduler.requeued)
