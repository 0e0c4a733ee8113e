"""Token buckets: the same arithmetic in memory and in Redis (shared by every process there), and a
Redis that is gone or stalled lets everything through instead of stopping intake."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from andon.platform.http.errors import TooManyRequestsError
from andon.platform.http.rate_limit import Buckets, MemoryBuckets, RateLimiter, RedisBuckets
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.anyio
# Slow enough that nothing refills while a test runs, so each take below is exact.
RATE = 0.01
BURST = 5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def buckets(request: pytest.FixtureRequest) -> AsyncIterator[Buckets]:
    if request.param == "memory":
        yield MemoryBuckets(RATE, BURST)
        return
    if not REDIS_URL:
        pytest.skip("needs ANDON_REDIS_URL")
    namespace = f"andon-test-limits-{uuid.uuid4().hex}"
    made = RedisBuckets(REDIS_URL, namespace, RATE, BURST)
    yield made
    await made.close()
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)


async def test_a_bucket_gives_its_burst_then_says_how_long_to_wait(buckets: Buckets) -> None:
    for _ in range(BURST):
        assert await buckets.take("tenant-a") is None
    wait = await buckets.take("tenant-a")
    assert wait is not None and 0.9 / RATE < wait <= 1 / RATE
    # Keys are apart.
    assert await buckets.take("tenant-b", BURST) is None
    # A cost that does not fit waits for what it needs, and takes nothing meanwhile.
    wait_three = await buckets.take("tenant-b", 3)
    assert wait_three is not None and 2.9 / RATE < wait_three <= 3 / RATE


async def test_a_cost_above_the_burst_needs_a_full_bucket_and_leaves_a_debt(buckets: Buckets) -> None:
    assert await buckets.take("big", 2) is None
    wait = await buckets.take("big", 3 * BURST)  # needs the whole bucket: two tokens short
    assert wait is not None and 1.9 / RATE < wait <= 2 / RATE
    assert await buckets.take("fresh", 3 * BURST) is None
    # Ten events in debt: the next one waits for eleven tokens' worth.
    after = await buckets.take("fresh")
    assert after is not None and 10.9 / RATE < after <= 11 / RATE


async def test_memory_buckets_refill_with_time_and_forget_full_ones() -> None:
    clock = Clock()
    buckets = MemoryBuckets(2.0, 4, clock=clock)
    assert await buckets.take("k", 4) is None
    assert await buckets.take("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert await buckets.take("k") is None
    clock.now += 100  # refills to the burst, never beyond
    assert await buckets.take("k", 4) is None
    assert await buckets.take("k") == pytest.approx(0.5)

    buckets.PRUNE_ABOVE = 3
    for n in range(3):
        await buckets.take(f"idle-{n}")
    clock.now += 100
    await buckets.take("busy", 4)
    assert set(buckets._buckets) == {"busy"}  # the refilled ones are gone ("k" too)


async def test_the_limiter_answers_429_with_a_whole_number_of_seconds() -> None:
    limiter = RateLimiter(MemoryBuckets(RATE, BURST))
    tenant = uuid.uuid4()
    await limiter.check_events(tenant, BURST)
    with pytest.raises(TooManyRequestsError) as refused:
        await limiter.check_events(tenant)
    assert refused.value.status_code == 429
    assert refused.value.headers == {"Retry-After": str(int(1 / RATE))}
    assert refused.value.extra["retry_after"] == int(1 / RATE)
    await limiter.check_events(uuid.uuid4(), BURST)  # another tenant is not held back
    await RateLimiter(None).check_events(tenant, 10**6)  # no limit configured


@pytest.mark.skipif(not REDIS_URL, reason="needs ANDON_REDIS_URL")
async def test_redis_buckets_are_one_limit_for_every_process() -> None:
    namespace = f"andon-test-limits-{uuid.uuid4().hex}"
    # Two processes' limiters: same Redis, same namespace.
    first, second = (RedisBuckets(REDIS_URL, namespace, RATE, BURST) for _ in range(2))
    try:
        for n in range(BURST):
            assert await (first if n % 2 else second).take("events:t") is None
        assert await first.take("events:t") is not None
        assert await second.take("events:t") is not None
        assert await second.take("events:u") is None
    finally:
        await first.close()
        await second.close()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(f"{namespace}:*"))
        assert keys == [f"{namespace}:limits:events:t", f"{namespace}:limits:events:u"]
        # Redis forgets a bucket once it would have refilled.
        assert 0 < client.pttl(keys[0]) <= (BURST / RATE + 1) * 1000
        client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def stalled_redis() -> Iterator[str]:
    """An address that takes connections and never answers (a hung Redis, worse than a dead one)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


@pytest.fixture
def dead_redis() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # nothing listens there now


@pytest.mark.parametrize("address", ["dead_redis", "stalled_redis"])
async def test_without_redis_everything_is_let_through_and_redis_is_left_alone_a_while(
    address: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(address)
    buckets = RedisBuckets(url, "andon-test-limits", RATE, 1, timeout=0.2, pause=60)
    started = time.monotonic()
    try:
        for _ in range(50):
            assert await buckets.take("events:t", 10) is None
    finally:
        await buckets.close()
    # One attempt at most waits for the timeout; the rest do not touch Redis during the pause.
    assert time.monotonic() - started < 1.5


@pytest.mark.skipif(not REDIS_URL, reason="needs ANDON_REDIS_URL")
async def test_redis_leases_let_processes_spend_locally_and_never_beyond_the_bucket() -> None:
    namespace = f"andon-test-limits-{uuid.uuid4().hex}"
    rate, burst = 100.0, 200  # a lease of five tokens (a twentieth of a second)
    first, second = (RedisBuckets(REDIS_URL, namespace, rate, burst) for _ in range(2))
    client = redis.Redis.from_url(REDIS_URL)
    key = f"{namespace}:limits:events:t"
    try:
        assert first.lease == 5
        assert await first.take("events:t") is None
        # One Redis call took the request's token and a lease of five more.
        assert float(client.hget(key, "tokens") or 0) == pytest.approx(burst - 6, abs=0.5)
        written = client.hget(key, "at")
        for _ in range(5):
            assert await first.take("events:t") is None
        assert client.hget(key, "at") == written  # spent from the lease: Redis untouched

        # Both processes together get the bucket and what refilled meanwhile, never more.
        started, granted = time.monotonic(), 6
        while True:
            answers = [await first.take("events:t"), await second.take("events:t")]
            granted += answers.count(None)
            if all(a is not None for a in answers):
                break
        refilled = (time.monotonic() - started) * rate
        assert burst - 1 <= granted <= burst + refilled + 1
    finally:
        await first.close()
        await second.close()
        client.delete(key)
        client.close()


@pytest.mark.skipif(not REDIS_URL, reason="needs ANDON_REDIS_URL")
async def test_concurrent_first_requests_lease_once_and_do_not_drain_the_bucket() -> None:
    namespace = f"andon-test-limits-{uuid.uuid4().hex}"
    buckets = RedisBuckets(REDIS_URL, namespace, 100.0, 200)  # leases of five
    try:
        # A hundred requests at once, before any lease has come back: each must not lease for itself.
        answers = await asyncio.gather(*(buckets.take("events:t") for _ in range(100)))
        assert answers.count(None) == 100
    finally:
        await buckets.close()
        with redis.Redis.from_url(REDIS_URL) as client:
            client.delete(f"{namespace}:limits:events:t")
