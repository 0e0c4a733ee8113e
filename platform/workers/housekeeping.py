"""The periodic jobs that keep the data in shape: the retention sweeps and the usage collector. They
run beside the web app under ``andon dev`` and in ``andon scheduler`` in production."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.usage.collectors import collect_usage
from andon.connectors.sources.intake import expire_delivery_log
from andon.platform.config.settings import Settings
from andon.platform.events.retention import expire_raw_payloads
from andon.platform.workers.periodic import Periodic


def housekeeping_jobs(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> list[Periodic]:
    async def retention() -> None:
        await expire_raw_payloads(sessionmaker, settings.events.raw_retention_days)
        await expire_delivery_log(sessionmaker, settings.events.delivery_log_days)

    async def metering() -> None:
        await collect_usage(sessionmaker, lag=timedelta(seconds=settings.metering.lag_seconds))

    jobs = [Periodic("retention", settings.events.retention_sweep_seconds, retention)]
    if settings.metering.collect_seconds:
        jobs.append(Periodic("metering", settings.metering.collect_seconds, metering))
    return jobs
