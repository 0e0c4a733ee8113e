"""On PostgreSQL a commit that adds outbox rows wakes every relay at once (LISTEN/NOTIFY), whichever
process committed: events reach the broker in milliseconds, not at the relay's next poll."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from litestar import Litestar

from andon.platform.events.relay import Relay
from tests.conftest import DATABASE_URL
from tests.support.waiting import eventually
from tests.tenants.factories import World, auth

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not DATABASE_URL.startswith("postgresql"), reason="needs ANDON_DATABASE_URL=postgresql+asyncpg://..."
    ),
]


async def test_a_commit_wakes_a_sleeping_relay(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    # A relay that would otherwise look only once a minute, as one in another process would.
    relay = Relay(app.state.sessionmaker, app.state.broker, idle=60, listen=True)
    relay.start()
    try:
        assert await eventually(lambda: relay._listener is not None, 5)  # its first look finds nothing
        assert relay._listener is not None, "the relay could not LISTEN"
        await asyncio.sleep(0.1)
        c = world.a.customer
        sent_at = time.monotonic()
        r = await api.post(
            "/api/v1/events",
            headers={**auth(c.key), "content-type": "application/cloudevents+json"},
            json={
                "specversion": "1.0",
                "id": "wake-1",
                "source": "urn:test",
                "type": "dev.andon.shift.handover.v1",
                "data": {"shift": "Early", "notes": "all quiet"},
            },
        )
        assert r.status_code == 201, r.text
        assert await eventually(lambda: relay.sent > 0, 5)
        assert relay.sent == 1
        assert time.monotonic() - sent_at < 2, "woken by the commit, not by its minute-long poll"
    finally:
        await relay.stop()
