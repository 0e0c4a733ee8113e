"""Calls to systems inside a plant (outbound connections marked ``relay_target``), run by the plant's
relay agent instead of from Andon's servers.

The agent's socket is held by a web process, while steps run in workers. Two bridges:

- ``LocalRelayCalls`` (no Redis: ``andon dev``): the links are in this process, perhaps on another
  event loop (the in-process worker threads), so the call is handed to the links' loop.
- ``RedisRelayCalls`` (production): the worker pushes the call on the customer's request list in
  Redis and waits on a reply key; every web process holding an agent of that customer pops from the
  list (``RedisCallPump``), has its agent run the call, and pushes the answer to the reply key. The
  connection's secrets cross Redis sealed with Andon's keys, never in clear. A request carries its
  deadline: one still in the list after its caller gave up is dropped, never run late.

Whichever agent of the customer is connected runs the call (a customer with several plants runs one
agent per plant; naming the plant per connection is not done yet). A call the link loses midway fails
as ``unavailable``: the engine retries it with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from typing import Any, Protocol

import msgspec
import structlog
from redis.asyncio import Redis

from andon.connectors.onprem.links import AgentLinks
from andon.connectors.onprem.protocol import CallFailed, CallMessage, CallResult
from andon.connectors.outbound.errors import ConnectorError
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.engine.capabilities import UNAVAILABLE

log = structlog.get_logger("andon.relay.calls")
# How long an answer waits in Redis for the worker that asked (it is normally there already).
REPLY_TTL_SECONDS = 60


class RelayCalls(Protocol):
    async def call(self, tenant_id: uuid.UUID, message: CallMessage) -> Any: ...


def answer(reply: CallResult | CallFailed) -> Any:
    if isinstance(reply, CallFailed):
        raise ConnectorError(reply.message, reply.kind, retry_after=reply.retry_after)
    return reply.output


class LocalRelayCalls:
    def __init__(self, links: AgentLinks) -> None:
        self.links = links

    async def call(self, tenant_id: uuid.UUID, message: CallMessage) -> Any:
        loop = self.links.loop
        if loop is None or loop is asyncio.get_running_loop():
            return answer(await self.links.call(tenant_id, message))
        running = asyncio.run_coroutine_threadsafe(self.links.call(tenant_id, message), loop)
        return answer(await asyncio.wrap_future(running))


class Request(msgspec.Struct, kw_only=True):
    call: CallMessage
    # The secrets, sealed: the call's own ``secrets`` are empty while it is in Redis.
    secrets_sealed: str
    deadline: float


_requests = msgspec.json.Decoder(Request)
_replies: msgspec.json.Decoder[CallResult | CallFailed] = msgspec.json.Decoder(CallResult | CallFailed)


def requests_key(namespace: str, tenant_id: uuid.UUID) -> str:
    return f"{namespace}:relay:calls:{tenant_id}"


def reply_key(namespace: str, call_id: str) -> str:
    return f"{namespace}:relay:reply:{call_id}"


class RedisRelayCalls:
    """A worker's side: one per worker event loop (a redis.asyncio client belongs to its loop)."""

    def __init__(self, url: str, namespace: str, box: SecretBox) -> None:
        self.redis = Redis.from_url(url)
        self.namespace = namespace
        self.box = box

    async def call(self, tenant_id: uuid.UUID, message: CallMessage) -> Any:
        sealed = self.box.seal(msgspec.json.encode(message.secrets).decode())
        request = Request(
            call=msgspec.structs.replace(message, secrets={}),
            secrets_sealed=sealed,
            deadline=time.time() + message.timeout_seconds,
        )
        key = requests_key(self.namespace, tenant_id)
        wait = math.ceil(message.timeout_seconds) + 2
        await self.redis.rpush(key, msgspec.json.encode(request))
        await self.redis.expire(key, wait + REPLY_TTL_SECONDS)
        got = await self.redis.blpop([reply_key(self.namespace, message.id)], timeout=wait)
        if got is None:
            raise ConnectorError(
                f"the plant's on-premise relay did not answer within {wait} s: is its agent connected?", UNAVAILABLE
            )
        return answer(_replies.decode(got[1]))


class RedisCallPump:
    """A web process's side, per connected agent: takes its customer's calls from Redis to the agent."""

    def __init__(self, url: str, namespace: str, box: SecretBox, links: AgentLinks) -> None:
        self.url = url
        self.namespace = namespace
        self.box = box
        self.links = links

    async def run(self, tenant_id: uuid.UUID) -> None:
        redis = Redis.from_url(self.url)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    got = await redis.blpop([requests_key(self.namespace, tenant_id)], timeout=1)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis away: calls wait in their list, or their callers give up
                    log.warning("relay_calls_unreachable", error=f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(1)
                    continue
                if got is None:
                    continue
                request = _requests.decode(got[1])
                if request.deadline <= time.time():
                    log.info("relay_call_expired", call_id=request.call.id, tenant_id=str(tenant_id))
                    continue
                task = asyncio.create_task(self._relay(redis, tenant_id, request))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()
            with contextlib.suppress(Exception):
                await redis.aclose()

    async def _relay(self, redis: Redis, tenant_id: uuid.UUID, request: Request) -> None:
        secrets = msgspec.json.decode(self.box.open(request.secrets_sealed), type=dict[str, str])
        left = max(1.0, request.deadline - time.time())
        call = msgspec.structs.replace(request.call, secrets=secrets, timeout_seconds=left)
        reply = await self.links.call(tenant_id, call)
        key = reply_key(self.namespace, call.id)
        await redis.rpush(key, msgspec.json.encode(reply))
        await redis.expire(key, REPLY_TTL_SECONDS)
