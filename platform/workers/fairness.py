"""Fairness between tenants: at most ``limit`` steps of one tenant run at once, across every worker.

One tenant's flood (thousands of alarms, each starting a run) must not take every worker thread
while another tenant's single alarm waits behind it. So a step first takes one of its tenant's
slots; with none free it is not run: its message goes back to the broker with a short, jittered
delay, and the thread moves on to the next message, which is as likely another tenant's. A slot is
a lease, not a counter: it lapses on its own when the worker holding it dies (``kill -9``), so a
crash cannot leak a tenant's capacity.

The slots live in Redis (a sorted set per tenant: member = the step's token, score = when its lease
lapses), shared by every worker process; without Redis (embedded mode, one process) in memory.
Redis unreachable means no limit for a while (fairness protects; it must never stop the work).

What this does not do: the refused messages still pass through the queue, so behind a flood of N
steps another tenant's step waits for the workers to turn N refusals over (about a millisecond
each), not for the flood to finish. Per-tenant queues would avoid even that; they are the next step
if floods of hundreds of thousands of steps become real.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

log = structlog.get_logger("andon.fairness")

# KEYS[1] the tenant's slots; ARGV token, limit, lease (ms). Redis's own clock for every worker.
_ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
  return 1
end
return 0
"""


class Slots(Protocol):
    async def acquire(self, tenant: str, token: str) -> bool: ...

    async def release(self, tenant: str, token: str) -> None: ...

    async def close(self) -> None: ...


class MemorySlots:
    """One process's slots (embedded mode). Only the worker's own event loop touches them."""

    def __init__(self, limit: int, lease_seconds: float) -> None:
        self.limit = limit
        self.lease = lease_seconds
        self._held: dict[str, dict[str, float]] = {}

    async def acquire(self, tenant: str, token: str) -> bool:
        now = time.monotonic()
        held = {t: until for t, until in self._held.get(tenant, {}).items() if until > now}
        if token not in held and len(held) >= self.limit:
            self._held[tenant] = held
            return False
        held[token] = now + self.lease
        self._held[tenant] = held
        return True

    async def release(self, tenant: str, token: str) -> None:
        self._held.get(tenant, {}).pop(token, None)

    async def close(self) -> None:
        return None


class RedisSlots:
    def __init__(self, url: str, namespace: str, limit: int, lease_seconds: float, *, timeout: float = 0.5) -> None:
        self.url = url
        self.prefix = f"{namespace}:slots:"
        self.limit = limit
        self.lease_ms = int(lease_seconds * 1000)
        self.timeout = timeout
        self._down_until = 0.0
        # A redis.asyncio connection belongs to the loop that opened it.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Redis, AsyncScript]] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> tuple[Redis, AsyncScript]:
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            client = Redis.from_url(self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
            found = (client, client.register_script(_ACQUIRE))
            self._clients[loop] = found
        return found

    async def acquire(self, tenant: str, token: str) -> bool:
        if time.monotonic() < self._down_until:
            return True
        try:
            taken = await self._client()[1](keys=[self.prefix + tenant], args=[token, self.limit, self.lease_ms])
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("fairness_unavailable", error=type(exc).__name__)
            self._down_until = time.monotonic() + 5.0
            return True
        return bool(taken)

    async def release(self, tenant: str, token: str) -> None:
        with contextlib.suppress(RedisError, OSError, TimeoutError):  # else the lease lapses by itself
            await self._client()[0].zrem(self.prefix + tenant, token)

    async def close(self) -> None:
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()
