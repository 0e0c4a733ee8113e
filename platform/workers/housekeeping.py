"""The periodic jobs that keep the data in shape: the retention sweeps, the usage collector and, when
Stripe is configured, the delivery of subscription changes and the usage push to Stripe. They run
beside the web app under ``andon dev`` and in ``andon scheduler`` in production."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.usage.collectors import collect_usage
from andon.connectors.sources.intake import expire_delivery_log
from andon.platform.config.settings import Settings
from andon.platform.events.retention import expire_raw_payloads
from andon.platform.workers.periodic import Periodic

# Subscription changes waiting for Stripe are retried on this beat (each row keeps its own back-off).
STRIPE_SUBSCRIPTIONS_SECONDS = 30.0
# Stripe bills usage by the month: a push every five minutes keeps its running invoice current.
STRIPE_USAGE_SECONDS = 300.0


def housekeeping_jobs(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> list[Periodic]:
    async def retention() -> None:
        await expire_raw_payloads(sessionmaker, settings.events.raw_retention_days)
        await expire_delivery_log(sessionmaker, settings.events.delivery_log_days)

    async def metering() -> None:
        await collect_usage(sessionmaker, lag=timedelta(seconds=settings.metering.lag_seconds))

    jobs = [Periodic("retention", settings.events.retention_sweep_seconds, retention)]
    if settings.metering.collect_seconds:
        jobs.append(Periodic("metering", settings.metering.collect_seconds, metering))
    if settings.stripe.api_key.get_secret_value():
        from andon.billing.stripe.pending import deliver_pending, push_all_usage

        async def stripe_subscriptions() -> None:
            await deliver_pending(sessionmaker, settings.stripe)

        async def stripe_usage() -> None:
            await push_all_usage(sessionmaker, settings.stripe)

        jobs.append(Periodic("stripe-subscriptions", STRIPE_SUBSCRIPTIONS_SECONDS, stripe_subscriptions))
        jobs.append(Periodic("stripe-usage", STRIPE_USAGE_SECONDS, stripe_usage))
    return jobs
