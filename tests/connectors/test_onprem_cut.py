"""The relay acceptance test: Andon (``andon serve``) and the agent (``andon relay``) as separate
processes, a TCP proxy of the test's between them. While the plant posts 500 events from five
sources to the agent, the link is cut for 60 s: first the answers stop (events reach Andon but their
acknowledgements are lost), then every connection is dropped and new ones hang, as behind a dead
uplink. After the link is back, all 500 are stored exactly once, in order per source."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import msgspec
import pytest

from andon.connectors.onprem.server import PATH
from andon.platform.config.settings import Settings
from tests.connectors.test_onprem_relay import Proxy, alarm, free_port, relay_connection, stored
from tests.support.ingress import STRUCTURED
from tests.support.redis_server import purge_namespace
from tests.tenants.factories import World

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SOURCES, PER_SOURCE = 5, 100
CUT_SECONDS = 60.0


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANDON_ENVIRONMENT": "test",
        "ANDON_DATA_DIR": str(tmp_path),
        "ANDON_DATABASE_URL": settings.database.url,
        # The relay token was sealed by the test's app: the server must hold the same key to open it.
        "ANDON_SECURITY_SECRET_KEY": settings.security.secret_key.get_secret_value(),
        "ANDON_SECURITY_ENCRYPTION_KEYS": settings.security.encryption_keys,
        "ANDON_REDIS_URL": settings.redis.url,
        "ANDON_REDIS_NAMESPACE": settings.redis.namespace,
        "ANDON_WORKERS_IN_PROCESS": "false",
        "ANDON_LIMITS_EVENTS_PER_SECOND": "0",
        "ANDON_LOG_LEVEL": "WARNING",
    }


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "andon.platform.cli.main", *args], env=env, stdout=out, stderr=out)


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


async def _until(url: str, ok: str, log: Path, seconds: float = 60) -> dict[str, object]:
    """The first 200 answer of ``url`` whose JSON has ``ok`` true (any 200 when ``ok`` is empty)."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                r = await client.get(url, timeout=2)
                if r.status_code == 200 and (not ok or r.json().get(ok)):
                    body: dict[str, object] = r.json()
                    return body
            await asyncio.sleep(0.2)
    output = await asyncio.to_thread(log.read_text)
    pytest.fail(f"{url} never answered {ok or 'ok'}:\n{output[-3000:]}")


async def test_a_minute_without_the_link_loses_nothing_and_repeats_nothing(
    api: httpx.AsyncClient, world: World, settings: Settings, tmp_path: Path
) -> None:
    tenant = world.a.customer
    connection = await relay_connection(api, tenant)
    env = _env(settings, tmp_path)
    log = tmp_path / "processes.log"
    andon_port, agent_port = free_port(), free_port()
    andon = _spawn(["serve", "--host", "127.0.0.1", "--port", str(andon_port)], env, log)
    proxy = Proxy(andon_port)
    await proxy.start()
    agent = _spawn(
        [
            "relay",
            "--url",
            f"ws://127.0.0.1:{proxy.port}{PATH}",
            "--listen",
            f"127.0.0.1:{agent_port}",
            "--queue-dir",
            str(tmp_path / "agent"),
            "--max-backoff",
            "5",
        ],
        {**env, "ANDON_RELAY_TOKEN": connection["secret"]},
        log,
    )
    local = f"http://127.0.0.1:{agent_port}"
    sources = [f"{connection['source']}/press-{n}" for n in range(SOURCES)]
    try:
        await _until(f"http://127.0.0.1:{andon_port}/health/live", "", log)
        await _until(f"{local}/healthz", "connected", log)

        async with httpx.AsyncClient(base_url=local) as plant:
            began = time.monotonic()
            during_cut: list[dict[str, object]] = []
            muted_at = cut_at = 0.0
            for k in range(SOURCES * PER_SOURCE):
                if k == 50:
                    # The answers stop first: what Andon stores now is not acknowledged.
                    proxy.mute_answers = True
                    muted_at = time.monotonic()
                if k == 60:
                    proxy.cut()
                    cut_at = time.monotonic()
                    assert cut_at - muted_at >= 0.5
                source, n = sources[k % SOURCES], k // SOURCES
                r = await plant.post(
                    "/events",
                    content=msgspec.json.encode(alarm(source, f"p{k % SOURCES}-{n:04d}")),
                    headers={"content-type": STRUCTURED},
                )
                assert r.status_code == 202, r.text
                # 500 events in about 50 s: a steady plant, most of it while the link is down.
                await asyncio.sleep(0.1)
                if k > 60 and k % 100 == 0:
                    during_cut.append((await plant.get("/healthz")).json())
            await asyncio.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut_at)))
            in_cut = (await plant.get("/healthz")).json()
            proxy.restore()
            restored = time.monotonic()

            async def delivered() -> bool:
                health = (await plant.get("/healthz")).json()
                return bool(health["connected"]) and health["queued"] == 0

            deadline = restored + 90
            while not await delivered():
                assert time.monotonic() < deadline, (await plant.get("/healthz")).json()
                await asyncio.sleep(0.2)
            drained = time.monotonic() - restored
            final = (await plant.get("/healthz")).json()
    finally:
        _stop(agent, andon)
        await proxy.stop()
        if settings.redis.url:
            purge_namespace(settings.redis.url, settings.redis.namespace)

    assert in_cut["connected"] is False
    assert in_cut["queued"] >= SOURCES * PER_SOURCE - 60
    assert all(h["connected"] is False for h in during_cut)
    events = await stored(api, tenant)
    ids = Counter(e["event_id"] for e in events)
    assert len(events) == SOURCES * PER_SOURCE
    assert set(ids.values()) == {1}
    for p, source in enumerate(sources):
        in_order = [e["event_id"] for e in events if e["source"] == source]
        assert in_order == [f"p{p}-{n:04d}" for n in range(PER_SOURCE)], source
    outcomes = Counter(d["outcome"] for d in await _deliveries(api, world, connection))
    # Events stored while the answers were muted came again after the cut, and were recognised.
    assert outcomes["accepted"] == SOURCES * PER_SOURCE
    assert outcomes["duplicate"] >= 1
    assert outcomes["refused"] == 0
    assert final["refused_events"] == 0
    print(
        f"\nrelay cut: {SOURCES * PER_SOURCE} events over {time.monotonic() - began:.0f} s, link down "
        f"{restored - cut_at:.0f} s with {in_cut['queued']} queued (oldest {in_cut['oldest_age_seconds']} s); "
        f"drained {drained:.1f} s after the link returned; {outcomes['duplicate']} resent entries absorbed; "
        f"{proxy.connections} TCP connections through the proxy"
    )


async def _deliveries(api: httpx.AsyncClient, world: World, connection: dict[str, object]) -> list[dict[str, object]]:
    """Every line of the connection's delivery log (pages of 100)."""
    tenant = world.a.customer
    found: list[dict[str, object]] = []
    while True:
        r = await api.get(
            f"/api/v1/customers/{tenant.customer_id}/connections/{connection['id']}/deliveries",
            headers={"Authorization": f"Bearer {tenant.key}"},
            params={"limit": 100, "offset": len(found)},
        )
        assert r.status_code == 200, r.text
        page = r.json()["items"]
        found += page
        if len(page) < 100:
            return found
