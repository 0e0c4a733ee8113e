"""The Dramatiq broker: Redis in production, an in-process stub in embedded mode.

Built by a call, never on import, so tests and the dev server choose their own.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from andon.platform.config.settings import Settings


def build_broker(settings: Settings) -> dramatiq.Broker:
    if settings.redis.url:
        broker: dramatiq.Broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.redis.url, namespace=settings.redis.namespace
        )
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    return broker


def broker_ready(broker: dramatiq.Broker) -> tuple[bool, str]:
    if isinstance(broker, RedisBroker):
        try:
            broker.client.ping()
        except Exception as exc:  # any client failure means "not ready", reported as such
            return False, f"redis: {type(exc).__name__}"
        return True, "redis"
    return True, "in-process"
