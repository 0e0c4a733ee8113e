"""``andon relay``: the agent that runs inside the plant's network.

Local systems post events to it as they would to Andon (``POST /events``: a CloudEvent, a CloudEvents
batch, or any JSON for the relay connection's mapping); it answers 202 once they are on disk in its
queue, and its forwarder sends them to Andon over the one outbound WebSocket. ``GET /healthz`` says
whether the link is up and how much is waiting.

The local port takes no credential: bind it to an address only the plant's systems reach.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import structlog
import uvicorn
from litestar import Litestar, Request, get, post

from andon.connectors.onprem.disk_queue import DiskQueue
from andon.connectors.onprem.forwarder import Forwarder, LinkSettings
from andon.platform.events.envelope import BATCH, STRUCTURED, parse_batch, parse_structured
from andon.platform.http.errors import UnsupportedMediaTypeError, field_error
from andon.platform.http.problems import EXCEPTION_HANDLERS

log = structlog.get_logger("andon.relay.agent")
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AgentSettings:
    link: LinkSettings
    queue_dir: Path
    host: str = "127.0.0.1"
    port: int = 8088
    max_entries: int = 100_000
    max_bytes: int = 256 * 1024 * 1024


class Accepted(msgspec.Struct, kw_only=True):
    queued: int
    # The queue positions of the events, in the order they will reach Andon.
    seqs: list[int]


class Health(msgspec.Struct, kw_only=True):
    connected: bool
    connected_since: float | None
    queued: int
    queued_bytes: int
    oldest_age_seconds: float | None
    last_error: str | None
    refused_events: int
    last_refusal: str | None
    # Calls Andon had this agent run on the plant's systems since it started.
    calls: int


def split_body(content_type: str, body: bytes) -> list[bytes]:
    """The queue entries a request stands for, each checked as far as the agent can check it (the
    mapping is Andon's); a refusal says what is wrong, and nothing of the request is queued."""
    if content_type == BATCH:
        return [raw for _, raw in parse_batch(body)]
    if content_type == STRUCTURED:
        parse_structured(body)
        return [body]
    if content_type == "application/json":
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise field_error("$", f"the body is not JSON ({exc})") from None
        return [body]
    raise UnsupportedMediaTypeError(
        f"send {STRUCTURED}, {BATCH}, or application/json (a payload for the relay connection's mapping)"
    )


def local_app(queue: DiskQueue, forwarder: Forwarder) -> Litestar:
    @post("/events", status_code=202)
    async def accept(request: Request[Any, Any, Any]) -> Accepted:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        bodies = split_body(content_type, await request.body())
        seqs = await asyncio.to_thread(queue.put, bodies)
        forwarder.wake.set()
        return Accepted(queued=len(seqs), seqs=seqs)

    @get("/healthz")
    async def health() -> Health:
        stats = await asyncio.to_thread(queue.stats)
        oldest = stats.oldest_received_at
        return Health(
            connected=forwarder.connected,
            connected_since=forwarder.connected_since,
            queued=stats.entries,
            queued_bytes=stats.bytes,
            oldest_age_seconds=round(time.time() - oldest, 3) if oldest is not None else None,
            last_error=forwarder.last_error,
            refused_events=forwarder.refused_events,
            last_refusal=forwarder.last_refusal,
            calls=forwarder.calls,
        )

    def _start(app: Litestar) -> None:
        forwarder.start()

    async def _stop(app: Litestar) -> None:
        await forwarder.stop()
        await forwarder.egress.close()

    return Litestar(
        route_handlers=[accept, health],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        on_startup=[_start],
        on_shutdown=[_stop],
        openapi_config=None,
        debug=False,
    )


async def run_agent(settings: AgentSettings) -> None:
    queue = DiskQueue(settings.queue_dir, max_entries=settings.max_entries, max_bytes=settings.max_bytes)
    forwarder = Forwarder(queue, settings.link)
    server = uvicorn.Server(
        uvicorn.Config(
            local_app(queue, forwarder),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    log.info("relay_agent_started", listen=f"{settings.host}:{settings.port}", queue=str(queue.path))
    # uvicorn stops on SIGINT / SIGTERM; the forwarder stops with the app (what is queued stays on disk).
    try:
        await server.serve()
    finally:
        queue.close()
