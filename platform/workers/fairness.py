"""Fairness between tenants: at most ``limit`` steps of one tenant run at once, across every worker.

One tenant's flood (thousands of alarms, each starting a run) must not take every worker thread
while another tenant's single alarm waits behind it. So a step first takes one of its tenant's
slots. With none free it is not run and not sent round again: it is parked (its message kept in a
list per tenant), and the thread moves on to the next message, which is as likely another tenant's.
When a step of that tenant finishes and gives its slot back, the oldest parked step is sent again:
taking a slot and parking are one atomic script, so a slot given back in between cannot be missed.

A slot is a lease, not a counter: it lapses on its own when the worker holding it dies (``kill -9``),
so a crash cannot leak a tenant's capacity. A parked step whose release never comes (its tenant's
running steps all died) is still a queued step row, and the scheduler's sweep sends it again once
it has waited ``engine.stalled_after_seconds``.

The slots live in Redis (a sorted set per tenant: member = the step's token, score = when its lease
lapses; the parked messages in a list beside it), shared by every worker process; without Redis
(embedded mode, one process) in memory. Redis unreachable means no limit for a while (fairness
protects; it must never stop the work).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

log = structlog.get_logger("andon.fairness")

# KEYS[1] the tenant's slots, KEYS[2] its parked messages; ARGV token, limit, lease (ms), message.
# Taken: 1. Full: the message is parked, 0. Redis's own clock for every worker.
_ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
  return 1
end
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], 86400000)
return 0
"""
# KEYS[1] the slots, KEYS[2] the parked messages; ARGV token. The oldest parked message, if any.
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('LPOP', KEYS[2])
"""


class Slots(Protocol):
    async def acquire(self, tenant: str, token: str, message: str) -> bool:
        """True: the step may run. False: no slot free, ``message`` is parked for a later release."""
        ...

    async def release(self, tenant: str, token: str) -> str | None:
        """Gives the slot back; the oldest parked message of the tenant, to send again, if any."""
        ...

    async def close(self) -> None: ...


class MemorySlots:
    """One process's slots (embedded mode). Only the worker's own event loop touches them."""

    def __init__(self, limit: int, lease_seconds: float) -> None:
        self.limit = limit
        self.lease = lease_seconds
        self._held: dict[str, dict[str, float]] = {}
        self._parked: dict[str, deque[str]] = {}

    async def acquire(self, tenant: str, token: str, message: str) -> bool:
        now = time.monotonic()
        held = {t: until for t, until in self._held.get(tenant, {}).items() if until > now}
        self._held[tenant] = held
        if token not in held and len(held) >= self.limit:
            self._parked.setdefault(tenant, deque()).append(message)
            return False
        held[token] = now + self.lease
        return True

    async def release(self, tenant: str, token: str) -> str | None:
        self._held.get(tenant, {}).pop(token, None)
        parked = self._parked.get(tenant)
        return parked.popleft() if parked else None

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
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Redis, AsyncScript, AsyncScript]] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> tuple[Redis, AsyncScript, AsyncScript]:
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            client = Redis.from_url(self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
            found = (client, client.register_script(_ACQUIRE), client.register_script(_RELEASE))
            self._clients[loop] = found
        return found

    def _keys(self, tenant: str) -> list[str]:
        return [f"{self.prefix}{tenant}", f"{self.prefix}{tenant}:parked"]

    async def acquire(self, tenant: str, token: str, message: str) -> bool:
        if time.monotonic() < self._down_until:
            return True
        try:
            taken = await self._client()[1](keys=self._keys(tenant), args=[token, self.limit, self.lease_ms, message])
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("fairness_unavailable", error=type(exc).__name__)
            self._down_until = time.monotonic() + 5.0
            return True
        return bool(taken)

    async def release(self, tenant: str, token: str) -> str | None:
        try:
            parked = await self._client()[2](keys=self._keys(tenant), args=[token])
        except (RedisError, OSError, TimeoutError):
            return None  # the lease lapses by itself; parked steps wait for the sweep
        return parked.decode() if isinstance(parked, bytes) else parked

    async def close(self) -> None:
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()
