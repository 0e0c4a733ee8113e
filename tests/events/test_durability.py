"""Redis down means delay, never loss: ingress keeps accepting while the broker is gone, and once it is
back every event is processed exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import func, select

from andon.platform.config.settings import RedisSettings, Settings
from andon.platform.db.scope import bind_tenant, enter_relay_mode
from andon.platform.engine.executor import StepMessage
from andon.platform.events import processing
from andon.platform.events.models import Event, OutboxMessage
from andon.platform.events.processing import WORKER
from andon.platform.events.relay import Relay
from andon.platform.http.app import create_app
from tests.support.redis_server import PrivateRedis
from tests.support.workers import running_worker
from tests.tenants.factories import World, auth

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
TOTAL = 1_000
CRASH_AFTER = 300


@pytest.fixture
async def redis_app(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Litestar, PrivateRedis]]:
    server = PrivateRedis(tmp_path)
    server.start()
    app = create_app(settings.model_copy(update={"redis": RedisSettings(url=server.url, namespace="durability")}))
    try:
        yield app, server
    finally:
        await app.state.engine.dispose()
        server.stop()


def _event(n: int) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": f"d-{n}",
        "source": "urn:plc:durability",
        "type": "dev.andon.machine.state_changed.v1",
        "data": {"state": "running" if n % 2 else "idle"},
    }


async def _processed(app: Litestar, tenant_id: uuid.UUID) -> int:
    async with app.state.sessionmaker() as session, session.begin():
        await bind_tenant(session, tenant_id, WORKER)  # row-level security: read inside the tenant
        stmt = select(func.count()).select_from(Event).where(Event.tenant_id == tenant_id, Event.status == "processed")
        return int((await session.execute(stmt)).scalar_one())


async def _outbox(app: Litestar) -> int:
    async with app.state.sessionmaker() as session, session.begin():
        await enter_relay_mode(session)  # the outbox is read as the relay reads it
        return int((await session.execute(select(func.count()).select_from(OutboxMessage))).scalar_one())


async def test_a_redis_crash_mid_stream_loses_and_repeats_nothing(
    redis_app: tuple[Litestar, PrivateRedis],
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, server = redis_app
    processed: list[uuid.UUID] = []
    all_done = asyncio.Event()
    loop = asyncio.get_running_loop()
    real = processing.process_event

    async def counted(
        session: object, tenant_id: uuid.UUID, partner_id: uuid.UUID, event_id: uuid.UUID
    ) -> list[StepMessage] | None:
        done = await real(session, tenant_id, partner_id, event_id)  # type: ignore[arg-type]
        if done is not None:
            processed.append(event_id)
            if len(processed) == TOTAL:
                loop.call_soon_threadsafe(all_done.set)  # the worker runs on its own loop and thread
        return done

    monkeypatch.setattr(processing, "process_event", counted)
    relay = Relay(app.state.sessionmaker, app.state.broker, idle=0.05)
    relay.start()
    headers = {**auth(world.a.customer.key), "content-type": "application/cloudevents+json"}
    statuses: list[int] = []
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    with running_worker(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://andon.test") as api:
            for start in range(0, TOTAL, 25):
                if start == CRASH_AFTER:
                    server.crash()
                batch = [api.post("/api/v1/events", json=_event(n), headers=headers) for n in range(start, start + 25)]
                statuses += [r.status_code for r in await asyncio.gather(*batch)]
            assert statuses == [201] * TOTAL  # ingress never waited for the broker
            assert relay.failures > 0  # the relay did find Redis gone
            server.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_done.wait(), 120)
        await relay.stop()
    assert len(processed) == TOTAL and len(set(processed)) == TOTAL
    assert await _processed(app, world.a.customer.customer_id) == TOTAL
    assert await _outbox(app) == 0
