"""Rate limits: a token bucket per key, in Redis when there is one (shared by every process), else in
this process's memory.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; taking ``cost`` tokens
succeeds while the bucket holds ``min(cost, burst)`` of them, and may leave it in debt. So a request
larger than the whole bucket is still possible (when the bucket is full), and is paid for by the wait
that follows: over any long stretch a key gets ``rate`` per second, however its requests are sized.

With Redis, each process leases a small allowance at a time (a twentieth of a second of the rate, at
most a tenth of the burst) and spends it locally, so a busy tenant costs one Redis call per lease
rather than one per request. The lease is debited in Redis when taken, so every process together
never gets more than the bucket gives; an allowance unused for a second is dropped. With a rate too
small for a lease of two tokens, every take goes to Redis.

Redis down must not stop intake (events are the product; the limit only protects it): the Redis
buckets then let everything through, warn once, and try Redis again a few seconds later.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from andon.platform.config.settings import Settings
from andon.platform.http.errors import TooManyRequestsError

log = structlog.get_logger("andon.limits")


class Buckets(Protocol):
    async def take(self, key: str, cost: int = 1) -> float | None:
        """None: taken. Otherwise the seconds until ``cost`` tokens (at most the burst) are there."""
        ...

    async def close(self) -> None: ...


def _take(tokens: float, elapsed: float, rate: float, burst: int, cost: int) -> tuple[float, float | None]:
    """The bucket after ``elapsed`` seconds of refill and an attempt to take ``cost``: (tokens, wait)."""
    tokens = min(float(burst), tokens + max(0.0, elapsed) * rate)
    need = min(cost, burst)
    if tokens >= need:
        return tokens - cost, None
    return tokens, (need - tokens) / rate


class MemoryBuckets:
    """One process's buckets (embedded mode: one process is the whole deployment)."""

    # Above this many keys, buckets that have refilled completely (the same as absent) are dropped.
    PRUNE_ABOVE = 10_000

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        # The test client serves an app from another thread's event loop: keep each take whole.
        self._lock = threading.Lock()

    async def take(self, key: str, cost: int = 1) -> float | None:
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens, wait = _take(tokens, now - at, self.rate, self.burst, cost)
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.PRUNE_ABOVE:
                self._prune(now)
            return wait

    def _prune(self, now: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]

    async def close(self) -> None:
        return None


# KEYS[1] the bucket; ARGV rate, burst, cost, extra (tokens to lease beyond the cost, as many of them
# as the bucket holds). Redis's own clock, so processes on hosts with drifting clocks share one time
# line. Returns {wait, granted}: the wait in seconds as a string ("-1": taken), as Lua numbers would
# be truncated to integers on the way out, and the tokens taken (cost plus what was leased).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local extra = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local need = math.min(cost, burst)
local wait = -1
local granted = 0
if tokens >= need then
  granted = cost + math.max(0, math.min(extra, math.floor(tokens - cost)))
  tokens = tokens - granted
else
  wait = (need - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
-- Once refilled, the bucket is the same as no bucket: let Redis forget it.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {tostring(wait), granted}
"""


class RedisBuckets:
    """Buckets in Redis under ``<namespace>:limits:``, taken atomically by one Lua script."""

    LEASE_SECONDS = 0.05
    LEASE_SHARE = 0.1
    LEASE_LIFETIME = 1.0

    def __init__(
        self,
        url: str,
        namespace: str,
        rate: float,
        burst: int,
        *,
        timeout: float = 0.25,
        pause: float = 5.0,
    ) -> None:
        self.url = url
        self.prefix = f"{namespace}:limits:"
        self.rate = rate
        self.burst = burst
        self.timeout = timeout
        self.pause = pause
        self._down_until = 0.0
        self._down = False
        lease = math.floor(min(rate * self.LEASE_SECONDS, burst * self.LEASE_SHARE))
        self.lease = lease if lease >= 2 else 0
        # key -> (tokens leased and not yet spent, when they lapse); the test client's loop runs in
        # another thread, so each read-and-spend holds the lock.
        self._allowance: dict[str, tuple[int, float]] = {}
        self._allowance_lock = threading.Lock()
        # Keys with a lease being fetched: the requests meanwhile ask for their own cost only, or a
        # burst of concurrent first requests would each lease and drain the bucket for nothing.
        self._leasing: set[str] = set()
        # A redis.asyncio connection belongs to the event loop that opened it (the test client serves
        # from a loop of its own): one client per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Redis, AsyncScript]] = (
            weakref.WeakKeyDictionary()
        )

    def _script(self) -> AsyncScript:
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            client = Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
            )
            found = (client, client.register_script(_TAKE))
            self._clients[loop] = found
        return found[1]

    def _spend(self, key: str, cost: int, now: float) -> int:
        """Spend ``cost`` from the local allowance if it holds that much; else what it holds (taken out)."""
        with self._allowance_lock:
            held, lapses = self._allowance.pop(key, (0, 0.0))
            if now >= lapses:
                return 0
            if held >= cost:
                if held > cost:
                    self._allowance[key] = (held - cost, lapses)
                return cost
            return held

    def _keep(self, key: str, tokens: int, now: float) -> None:
        if tokens > 0:
            with self._allowance_lock:
                held, _ = self._allowance.get(key, (0, 0.0))
                self._allowance[key] = (held + tokens, now + self.LEASE_LIFETIME)

    async def take(self, key: str, cost: int = 1) -> float | None:
        now = time.monotonic()
        if now < self._down_until:
            return None
        held = self._spend(key, cost, now) if self.lease else 0
        if held == cost:
            return None
        extra = self.lease if self.lease and key not in self._leasing else 0
        if extra:
            self._leasing.add(key)
        try:
            answer = await self._ask(key, cost - held, extra)
        except BaseException:
            self._keep(key, held, now)
            raise
        finally:
            if extra:
                self._leasing.discard(key)
        wait, granted = answer
        if wait is not None:
            # Refused: what this process held is still its own for the next request.
            self._keep(key, held, now)
            return wait
        self._keep(key, granted - (cost - held), now)
        return None

    async def _ask(self, key: str, cost: int, extra: int) -> tuple[float | None, int]:
        """Redis's answer: (None, tokens granted) or (wait, 0); (None, cost) lets it through while Redis is down."""
        try:
            answer = await asyncio.wait_for(
                self._script()(keys=[self.prefix + key], args=[self.rate, self.burst, cost, extra]),
                timeout=self.timeout * 2,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            # Fail open: accept, say so once per outage, and leave Redis alone for a while.
            if not self._down:
                log.warning("rate_limit_unavailable", error=type(exc).__name__, retry_in_s=self.pause)
            self._down = True
            self._down_until = time.monotonic() + self.pause
            return None, cost
        if self._down:
            log.info("rate_limit_available")
            self._down = False
        text, granted = answer
        wait = float(text.decode() if isinstance(text, bytes) else text)
        return (None, int(granted)) if wait < 0 else (wait, 0)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        found = self._clients.pop(loop, None)
        if found is not None:
            await found[0].aclose()


class RateLimiter:
    """The limits the API applies; ``None`` buckets: no limit (``limits.events_per_second = 0``)."""

    def __init__(self, events: Buckets | None) -> None:
        self.events = events

    async def check_events(self, tenant_id: uuid.UUID, cost: int = 1) -> None:
        """Charge a tenant ``cost`` events, or raise 429 with the seconds until they would fit.

        Call it once the tenant is known and before anything is stored.
        """
        if self.events is None:
            return
        wait = await self.events.take(f"events:{tenant_id}", max(1, cost))
        if wait is not None:
            retry_after = max(1, math.ceil(wait))
            raise TooManyRequestsError(
                f"this customer sends more events than its limit; retry in {retry_after} s",
                retry_after=retry_after,
            )

    async def close(self) -> None:
        if self.events is not None:
            await self.events.close()


def build_rate_limiter(settings: Settings) -> RateLimiter:
    limits = settings.limits
    if limits.events_per_second <= 0:
        return RateLimiter(None)
    if settings.redis.url:
        return RateLimiter(
            RedisBuckets(settings.redis.url, settings.redis.namespace, limits.events_per_second, limits.events_burst)
        )
    return RateLimiter(MemoryBuckets(limits.events_per_second, limits.events_burst))
