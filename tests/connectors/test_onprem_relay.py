"""The on-premise relay in one process: the agent's bounded disk queue, its local API, and the agent's
forwarder against Andon's relay endpoint served by uvicorn on a real socket. Events arrive once and in
order; a resent entry is a repeat; a refused event is dropped with its reason; a wrong, rotated or
other customer's token delivers nothing; a newer link of the same agent takes over from an older one.
(The agent and Andon as separate processes, with the link cut for a minute: ``test_onprem_cut.py``.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from andon.connectors.onprem.agent import local_app
from andon.connectors.onprem.disk_queue import DiskQueue, QueueFull
from andon.connectors.onprem.forwarder import Forwarder, LinkSettings
from andon.connectors.onprem.protocol import (
    CLOSE_SUPERSEDED,
    Ack,
    EventMessage,
    Hello,
    RelayRefused,
    decode_from_andon,
    encode,
)
from andon.connectors.onprem.server import PATH
from tests.support.browser import browser_on
from tests.support.ingress import ALARM, STRUCTURED, connection_deliveries
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio


# Helpers shared with test_onprem_cut.py.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def relay_connection(api: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """A relay connection of the customer; the answer carries the agent's token as ``secret``."""
    r = await api.post(
        f"/api/v1/customers/{tenant.customer_id}/connections/",
        headers=auth(tenant.key),
        json={"name": f"relay {uuid.uuid4().hex[:8]}", "kind": "relay", **fields},
    )
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


def alarm(source: str, event_id: str, **attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": ALARM,
        "data": {"code": "E42", "message": "Over temperature", "value": 96.5},
        **attributes,
    }


async def stored(api: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    """The customer's stored events in the order they were stored (oldest first)."""
    items: list[dict[str, Any]] = []
    while True:
        r = await api.get(
            "/api/v1/events", headers=auth(tenant.key), params={"limit": 500, "offset": len(items), **params}
        )
        assert r.status_code == 200, r.text
        page = r.json()["items"]
        items += page
        if len(page) < 500:
            return items[::-1]


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class Proxy:
    """Forwards TCP from a local port to Andon, and can cut the link."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.mute_answers = False
        self.down = False
        self.pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self._abort_all()
        if self.server is not None:
            self.server.close()

    def cut(self) -> None:
        self.down = True
        self._abort_all()

    def restore(self) -> None:
        # The connections that hung during the cut die now, as stale sockets do once a link returns.
        self._abort_all()
        self.down = self.mute_answers = False

    def _abort_all(self) -> None:
        for client, upstream in list(self.pairs):
            client.transport.abort()
            if upstream is not None:
                upstream.transport.abort()
        self.pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.down:
            # A dead uplink: the connection attempt gets no answer at all.
            self.pairs.add((writer, None))
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self.pairs.add(pair)
        await asyncio.gather(self._pipe(reader, up_writer, answers=False), self._pipe(up_reader, writer, answers=True))
        self.pairs.discard(pair)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, answers: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await reader.read(65536):
                if answers and self.mute_answers:
                    continue
                writer.write(chunk)
                await writer.drain()
        writer.transport.abort()


# Fixtures.


@pytest.fixture
async def relay_url(app: Litestar) -> AsyncIterator[str]:
    """The app served by uvicorn on a free port, in the test's loop: the relay is a WebSocket."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _true(server.started), "uvicorn to start")
    yield f"ws://127.0.0.1:{port}{PATH}"
    server.should_exit = True
    await task


async def _true(value: bool) -> bool:
    return value


class Agent:
    def __init__(self, queue: DiskQueue, forwarder: Forwarder, local: httpx.AsyncClient) -> None:
        self.queue = queue
        self.forwarder = forwarder
        self.local = local

    async def post(self, body: Any, content_type: str = STRUCTURED) -> httpx.Response:
        return await self.local.post(
            "/events", content=msgspec.json.encode(body), headers={"content-type": content_type}
        )

    async def health(self) -> dict[str, Any]:
        r = await self.local.get("/healthz")
        assert r.status_code == 200, r.text
        health: dict[str, Any] = r.json()
        return health


MakeAgent = Callable[..., Awaitable[Agent]]


@pytest.fixture
async def agents(relay_url: str, tmp_path: Path) -> AsyncIterator[MakeAgent]:
    made: list[Agent] = []

    async def make(
        token: str, *, window: int = 8, max_entries: int = 1000, max_bytes: int = 1 << 20, proxied: str = ""
    ) -> Agent:
        queue = DiskQueue(tmp_path / f"agent-{len(made)}", max_entries=max_entries, max_bytes=max_bytes)
        link = LinkSettings(url=proxied or relay_url, token=token, window=window, min_backoff=0.05, max_backoff=0.3)
        forwarder = Forwarder(queue, link)
        forwarder.start()
        local = browser_on(local_app(queue, forwarder), "agent")
        agent = Agent(queue, forwarder, local)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        await agent.forwarder.stop()
        await agent.local.aclose()
        agent.queue.close()


async def link(url: str, token: str) -> ClientConnection:
    socket = await connect(url, additional_headers={"Authorization": f"Bearer {token}"})
    async with asyncio.timeout(10):
        hello = decode_from_andon(await socket.recv())
    assert isinstance(hello, Hello), hello
    return socket


async def send(socket: ClientConnection, seq: int, entry_id: str, body: Any) -> Ack:
    await socket.send(encode(EventMessage(seq=seq, id=entry_id, body=msgspec.Raw(msgspec.json.encode(body)))))
    async with asyncio.timeout(10):
        ack = decode_from_andon(await socket.recv())
    assert isinstance(ack, Ack), ack
    return ack


# The disk queue.


def test_queue_keeps_order_across_a_restart_and_forgets_only_what_was_acknowledged(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path, max_entries=10, max_bytes=10_000)
    seqs = queue.put([b'{"n":1}', b'{"n":2}']) + queue.put([b'{"n":3}'])
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    queue.close()

    reopened = DiskQueue(tmp_path, max_entries=10, max_bytes=10_000)
    assert [e.body for e in reopened.after(0, 10)] == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert [e.body for e in reopened.after(seqs[0], 1)] == [b'{"n":2}']
    reopened.remove_through(seqs[1])
    assert [e.body for e in reopened.after(0, 10)] == [b'{"n":3}']
    stats = reopened.stats()
    assert (stats.entries, stats.bytes) == (1, 7)
    assert stats.oldest_received_at is not None
    reopened.close()


def test_a_full_queue_refuses_the_whole_request_and_keeps_everything_it_holds(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path, max_entries=3, max_bytes=20)
    queue.put([b'{"n":1}', b'{"n":2}'])
    with pytest.raises(QueueFull) as by_count:
        queue.put([b'{"n":3}', b'{"n":4}'])
    assert by_count.value.status_code == 507
    assert "at most 3 events" in by_count.value.detail
    with pytest.raises(QueueFull):
        queue.put([b'{"n":"12345678"}'])  # 14 bytes: over the 20-byte bound with the 14 held
    assert [e.body for e in queue.after(0, 10)] == [b'{"n":1}', b'{"n":2}']
    queue.remove_through(queue.after(0, 1)[0].seq)
    assert queue.put([b'{"n":3}'])
    queue.close()


# The agent's local API.


async def test_local_api_refuses_what_andon_would_refuse_and_what_does_not_fit(
    agents: MakeAgent, api: httpx.AsyncClient, world: World
) -> None:
    connection = await relay_connection(api, world.a.customer)
    # A token for nothing: the forwarder never connects, so everything stays queued.
    agent = await agents(connection["secret"] + "x", max_entries=2)

    broken = await agent.post({"specversion": "1.0", "id": "1"})
    assert broken.status_code == 422, broken.text
    assert broken.headers["content-type"].startswith("application/problem+json")
    assert "source" in broken.json()["detail"]

    not_json = await agent.local.post("/events", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 422, not_json.text
    text = await agent.local.post("/events", content=b"hello", headers={"content-type": "text/plain"})
    assert text.status_code == 415, text.text

    ok = await agent.post([alarm("urn:x", "a"), alarm("urn:x", "b")], "application/cloudevents-batch+json")
    assert ok.status_code == 202, ok.text
    assert ok.json()["queued"] == 2
    full = await agent.post(alarm("urn:x", "c"))
    assert full.status_code == 507, full.text
    assert full.headers["content-type"].startswith("application/problem+json")
    assert full.headers["retry-after"] == "30"
    assert "queue is full" in full.json()["detail"]

    health = await agent.health()
    assert (health["queued"], health["connected"]) == (2, False)
    assert health["oldest_age_seconds"] >= 0
    await eventually(lambda: _refused(agent), "the agent to be refused")
    assert "401" in (await agent.health())["last_error"]


async def _refused(agent: Agent) -> bool:
    return "refused" in str((await agent.health())["last_error"])


# The agent against Andon.


async def test_events_arrive_once_in_queue_order_and_leave_the_queue(
    agents: MakeAgent, api: httpx.AsyncClient, world: World
) -> None:
    tenant = world.a.customer
    connection = await relay_connection(api, tenant)
    agent = await agents(connection["secret"], window=4)
    sources = [f"{connection['source']}/press-{n}" for n in range(3)]
    for k in range(30):
        r = await agent.post(alarm(sources[k % 3], f"e{k:03d}"))
        assert r.status_code == 202, r.text

    async def all_stored() -> bool:
        return (await agent.health())["queued"] == 0 and len(await stored(api, tenant)) == 30

    await eventually(all_stored, "30 events stored and the queue empty")
    for source in sources:
        ids = [e["event_id"] for e in await stored(api, tenant, source=source)]
        assert ids == sorted(ids) and len(ids) == 10
    health = await agent.health()
    assert health["connected"] is True
    assert (health["queued"], health["oldest_age_seconds"], health["refused_events"]) == (0, None, 0)
    deliveries = await connection_deliveries(api, tenant, connection)
    assert {d["outcome"] for d in deliveries} == {"accepted"}


async def test_a_resent_entry_is_a_repeat_and_plain_payloads_get_the_entry_id(
    relay_url: str, api: httpx.AsyncClient, world: World
) -> None:
    tenant = world.a.customer
    connection = await relay_connection(api, tenant, event_type=ALARM)
    reading = {"code": "E42", "message": "Over temperature", "value": 96.5}
    first = await link(relay_url, connection["secret"])
    assert (await send(first, 1, "entry-1", reading)).outcome == "stored"
    # The same reading again is another entry, so another event (no hash of the payload merges them).
    assert (await send(first, 2, "entry-2", reading)).outcome == "stored"
    await first.close()

    # The acknowledgements were lost: a new link sends both entries again.
    second = await link(relay_url, connection["secret"])
    assert (await send(second, 1, "entry-1", reading)).outcome == "duplicate"
    assert (await send(second, 2, "entry-2", reading)).outcome == "duplicate"
    await second.close()
    assert sorted(e["event_id"] for e in await stored(api, tenant)) == ["entry-1", "entry-2"]


async def test_a_refused_event_is_acknowledged_with_its_reason_and_logged(
    agents: MakeAgent, api: httpx.AsyncClient, world: World
) -> None:
    tenant = world.a.customer
    connection = await relay_connection(api, tenant)
    agent = await agents(connection["secret"])
    # Valid CloudEvents, but one names a source the connection does not vouch for.
    assert (await agent.post(alarm("urn:somebody-else", "x1"))).status_code == 202
    assert (await agent.post(alarm(connection["source"], "ok1"))).status_code == 202

    async def drained() -> bool:
        return bool((await agent.health())["queued"] == 0)

    await eventually(drained, "the queue to drain")
    assert [e["event_id"] for e in await stored(api, tenant)] == ["ok1"]
    health = await agent.health()
    assert health["refused_events"] == 1
    assert health["last_refusal"].startswith("422: source:")
    outcomes = sorted(d["outcome"] for d in await connection_deliveries(api, tenant, connection))
    assert outcomes == ["accepted", "refused"]


# Tenants and tokens.


async def test_another_customers_token_delivers_nothing_into_the_first_and_sees_nothing_of_it(
    relay_url: str, api: httpx.AsyncClient, world: World
) -> None:
    a, b = world.a.customer, world.b.customer
    conn_a = await relay_connection(api, a)
    conn_b = await relay_connection(api, b)
    link_a = await link(relay_url, conn_a["secret"])
    assert (await send(link_a, 1, "1", alarm(conn_a["source"], "a-1"))).outcome == "stored"
    await link_a.close()

    link_b = await link(relay_url, conn_b["secret"])
    # B's agent speaking for A's source, or naming A as the tenant, or reusing A's event: all refused.
    as_a = await send(link_b, 1, "1", alarm(conn_a["source"], "b-1"))
    assert (as_a.outcome, as_a.status) == ("refused", 422)
    into_a = await send(link_b, 2, "2", alarm(conn_b["source"], "b-2", tenantid=str(a.customer_id)))
    assert (into_a.outcome, into_a.status) == ("refused", 404)
    same_id = await send(link_b, 3, "3", alarm(conn_b["source"], "a-1"))
    assert same_id.outcome == "stored"  # B's own event that happens to share the id: not A's, not a repeat
    await link_b.close()

    assert [e["event_id"] for e in await stored(api, a)] == ["a-1"]
    assert [(e["source"], e["event_id"]) for e in await stored(api, b)] == [(conn_b["source"], "a-1")]
    # A's key does not see B's connection, nor its delivery log.
    r = await api.get(f"/api/v1/customers/{a.customer_id}/connections/{conn_b['id']}/deliveries", headers=auth(a.key))
    assert r.status_code == 404


@pytest.mark.parametrize("case", ["wrong", "another_kind", "rotated", "disabled", "no_header"])
async def test_a_bad_token_or_a_disabled_connection_is_refused_before_anything_is_read(
    relay_url: str, api: httpx.AsyncClient, world: World, case: str
) -> None:
    tenant = world.a.customer
    connection = await relay_connection(api, tenant)
    token = connection["secret"]
    base = f"/api/v1/customers/{tenant.customer_id}/connections/{connection['id']}"
    expected = (401, "invalid or rotated relay token")
    if case == "wrong":
        token = token[:-4] + "AAAA"
    elif case == "another_kind":
        hook = await api.post(
            f"/api/v1/customers/{tenant.customer_id}/connections/",
            headers=auth(tenant.key),
            json={"name": "a hook", "event_type": ALARM},
        )
        token = f"relay_{uuid.UUID(hook.json()['id']).hex}_{hook.json()['secret']}"
    elif case == "rotated":
        r = await api.post(f"{base}/rotate-secret", headers=auth(tenant.key), json={"rollover_seconds": 0})
        assert r.status_code == 200, r.text
        assert r.json()["secret"].startswith("relay_") and r.json()["secret"] != token
    elif case == "disabled":
        r = await api.patch(base, headers=auth(tenant.key), json={"enabled": False})
        assert r.status_code == 200, r.text
        expected = (404, "this relay connection is disabled in Andon")
    headers = {} if case == "no_header" else {"Authorization": f"Bearer {token}"}
    if case == "no_header":
        expected = (401, "send 'Authorization: Bearer <relay token>'")
    async with connect(relay_url, additional_headers=headers) as socket:
        answer = decode_from_andon(await socket.recv())
        assert isinstance(answer, RelayRefused)
        assert (answer.status, answer.detail) == expected
        with pytest.raises(ConnectionClosed, match="4401"):
            async with asyncio.timeout(10):
                await socket.recv()
    assert await stored(api, tenant) == []


async def test_the_token_is_shown_once_and_a_chosen_one_is_refused(api: httpx.AsyncClient, world: World) -> None:
    tenant = world.a.customer
    connection = await relay_connection(api, tenant)
    assert connection["secret"].startswith(f"relay_{uuid.UUID(connection['id']).hex}_")
    read = await api.get(
        f"/api/v1/customers/{tenant.customer_id}/connections/{connection['id']}", headers=auth(tenant.key)
    )
    assert read.status_code == 200 and "secret" not in read.json()
    chosen = await api.post(
        f"/api/v1/customers/{tenant.customer_id}/connections/",
        headers=auth(tenant.key),
        json={"name": "mine", "kind": "relay", "secret": "a-secret-i-chose-myself"},
    )
    assert chosen.status_code == 422, chosen.text
    assert chosen.json()["errors"] == [{"field": "secret", "message": "a relay agent's token is generated by Andon"}]


async def test_a_newer_link_of_the_same_agent_takes_over(relay_url: str, api: httpx.AsyncClient, world: World) -> None:
    tenant = world.a.customer
    connection = await relay_connection(api, tenant)
    old = await link(relay_url, connection["secret"])
    assert (await send(old, 1, "1", alarm(connection["source"], "e1"))).outcome == "stored"
    new = await link(relay_url, connection["secret"])
    with pytest.raises(ConnectionClosed, match=str(CLOSE_SUPERSEDED)):
        async with asyncio.timeout(10):
            await old.recv()
    assert (await send(new, 1, "1", alarm(connection["source"], "e1"))).outcome == "duplicate"
    assert (await send(new, 2, "2", alarm(connection["source"], "e2"))).outcome == "stored"
    await new.close()
    assert [e["event_id"] for e in await stored(api, tenant)] == ["e1", "e2"]


async def test_what_was_stored_but_not_acknowledged_is_sent_again_and_absorbed(
    agents: MakeAgent, api: httpx.AsyncClient, world: World, relay_url: str
) -> None:
    tenant = world.a.customer
    connection = await relay_connection(api, tenant)
    port = int(relay_url.rsplit(":", 1)[1].split("/")[0])
    proxy = Proxy(port)
    await proxy.start()
    agent = await agents(connection["secret"], proxied=relay_url.replace(str(port), str(proxy.port)))
    try:
        await eventually(lambda: _true(agent.forwarder.connected), "the agent to connect")
        proxy.mute_answers = True
        for k in range(5):
            assert (await agent.post(alarm(connection["source"], f"e{k}"))).status_code == 202

        async def five_stored() -> bool:
            return len(await stored(api, tenant)) == 5

        await eventually(five_stored, "five events stored")
        assert (await agent.health())["queued"] == 5  # none acknowledged
        proxy.cut()
        assert (await agent.post(alarm(connection["source"], "e5"))).status_code == 202
        proxy.restore()

        async def drained() -> bool:
            return bool((await agent.health())["queued"] == 0)

        await eventually(drained, "the queue to drain")
    finally:
        await proxy.stop()
    assert [e["event_id"] for e in await stored(api, tenant)] == [f"e{k}" for k in range(6)]
    outcomes = sorted(d["outcome"] for d in await connection_deliveries(api, tenant, connection))
    assert outcomes == ["accepted"] * 6 + ["duplicate"] * 5


async def test_an_idle_link_learns_that_its_connection_was_disabled(
    app: Litestar, relay_url: str, api: httpx.AsyncClient, world: World
) -> None:
    tenant = world.a.customer
    app.state.onprem.recheck_seconds = 0.2
    connection = await relay_connection(api, tenant)
    idle = await link(relay_url, connection["secret"])
    assert app.state.onprem.links.of_tenant(tenant.customer_id) is not None
    r = await api.patch(
        f"/api/v1/customers/{tenant.customer_id}/connections/{connection['id']}",
        headers=auth(tenant.key),
        json={"enabled": False},
    )
    assert r.status_code == 200, r.text
    async with asyncio.timeout(10):
        refused = decode_from_andon(await idle.recv())
    assert isinstance(refused, RelayRefused)
    assert (refused.status, refused.detail) == (404, "this relay connection is disabled in Andon")
    # Gone from the links at once: no call goes to the agent of a disabled connection.
    assert app.state.onprem.links.of_tenant(tenant.customer_id) is None


async def test_what_the_agent_accepted_survives_its_process_being_killed(
    relay_url: str, api: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    tenant = world.a.customer
    connection = await relay_connection(api, tenant)
    port = free_port()

    def start(url: str) -> subprocess.Popen[bytes]:
        command = ["relay", "--url", url, "--listen", f"127.0.0.1:{port}", "--queue-dir", str(tmp_path / "queue")]
        return subprocess.Popen(
            [sys.executable, "-m", "andon.platform.cli.main", *command],
            env={**os.environ, "ANDON_RELAY_TOKEN": connection["secret"]},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def answering() -> bool:
        try:
            return (await plant.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    # First with Andon out of reach: everything accepted stays queued on disk.
    agent = start(f"ws://127.0.0.1:{free_port()}{PATH}")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as plant:
            await eventually(answering, "the agent's local API")
            for k in range(20):
                r = await plant.post(
                    "/events",
                    content=msgspec.json.encode(alarm(connection["source"], f"e{k:02d}")),
                    headers={"content-type": STRUCTURED},
                )
                assert r.status_code == 202, r.text
            agent.kill()
            agent.wait()
            agent = start(relay_url)
            await eventually(answering, "the restarted agent's local API")

            async def delivered() -> bool:
                return bool((await plant.get("/healthz")).json()["queued"] == 0)

            await eventually(delivered, "the queue to drain")
    finally:
        agent.terminate()
        agent.wait(timeout=15)
    assert [e["event_id"] for e in await stored(api, tenant)] == [f"e{k:02d}" for k in range(20)]
