"""Limits on event ingress: each customer's event rate (429 with Retry-After), the body size (413),
and a count of every delivery's outcome at ``/metrics``. A refused request stores nothing, and one
customer's flood does not hold back another."""

from __future__ import annotations

import json
import math
import uuid

import httpx
import pytest
from litestar import Litestar

from andon.platform.config.settings import LimitSettings, Settings
from andon.platform.http.rate_limit import MemoryBuckets, RedisBuckets
from tests.conftest import REDIS_URL
from tests.support.ingress import cloudevent, grown, hook_connection, post_events, scrape, signed, stored_events
from tests.tenants.factories import World

pytestmark = pytest.mark.anyio
# A token every 20 s: nothing refills while a test runs, so each count below is exact.
RATE = 0.05
BURST = 5
MAX_BODY = 16 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "limits": LimitSettings(events_per_second=RATE, events_burst=BURST),
            "security": settings.security.model_copy(update={"max_body_bytes": MAX_BODY}),
        }
    )


def _alarm(n: int) -> bytes:
    return json.dumps({"code": f"E{n}", "message": "Over temperature", "value": n}).encode()


async def _deliver(api: httpx.AsyncClient, hook: dict[str, str], body: bytes, **headers: str) -> httpx.Response:
    return await api.post(hook["webhook_path"], content=body, headers={**signed(hook["secret"], body), **headers})


def _too_many(r: httpx.Response) -> int:
    """The seconds a 429 asks the sender to wait (header and body agree)."""
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    retry_after = int(r.headers["retry-after"])
    assert r.json()["retry_after"] == retry_after and r.json()["status"] == 429
    return retry_after


async def test_a_customer_over_its_limit_waits_while_another_is_accepted(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    # The buckets live in Redis when there is one (shared by every process), else in this process.
    assert isinstance(app.state.rate_limiter.events, RedisBuckets if REDIS_URL else MemoryBuckets)
    a, b = world.a.customer, world.b.customer
    burst = await post_events(api, a.key, [cloudevent(f"a-{i}") for i in range(BURST)])
    assert burst.status_code == 201, burst.text

    over = await post_events(api, a.key, cloudevent("a-over"))
    assert 1 <= _too_many(over) <= math.ceil(1 / RATE)
    # The limit is the customer's, whichever key sends for it: its partner's too.
    via_partner = await post_events(api, world.a.key, cloudevent("a-partner", tenantid=str(a.customer_id)))
    assert _too_many(via_partner) >= 1

    other = await post_events(api, b.key, [cloudevent(f"b-{i}") for i in range(BURST)])
    assert other.status_code == 201, other.text
    assert sorted(await stored_events(api, a)) == [f"a-{i}" for i in range(BURST)]
    assert len(await stored_events(api, b)) == BURST


async def test_a_batch_costs_its_events_and_a_larger_one_than_the_burst_is_paid_for_after(
    api: httpx.AsyncClient, world: World
) -> None:
    a = world.a.customer
    first = await post_events(api, a.key, [cloudevent(f"x-{i}") for i in range(2)])
    assert first.status_code == 201, first.text
    # Three tokens left: a batch of four does not fit, and nothing of it is stored.
    assert _too_many(await post_events(api, a.key, [cloudevent(f"y-{i}") for i in range(4)])) >= 1
    three = await post_events(api, a.key, [cloudevent(f"z-{i}") for i in range(3)])
    assert three.status_code == 201, three.text
    assert sorted(await stored_events(api, a)) == ["x-0", "x-1", "z-0", "z-1", "z-2"]

    # A batch larger than the whole bucket goes through once the bucket is full, and its debt is
    # the next request's wait: over time a customer gets its rate, however it sizes its batches.
    b = world.b.customer
    big = await post_events(api, b.key, [cloudevent(f"big-{i}") for i in range(2 * BURST)])
    assert big.status_code == 201, big.text
    wait = _too_many(await post_events(api, b.key, cloudevent("after-big")))
    assert math.ceil(BURST / RATE) < wait <= math.ceil((BURST + 1) / RATE)


async def test_hook_deliveries_count_against_their_customers_limit(api: httpx.AsyncClient, world: World) -> None:
    a, b = world.a.customer, world.b.customer
    hook = await hook_connection(api, a)
    for n in range(BURST):
        r = await _deliver(api, hook, _alarm(n))
        assert r.status_code == 201, r.text
    retry_after = _too_many(await _deliver(api, hook, _alarm(99)))
    assert 1 <= retry_after <= math.ceil(1 / RATE)
    # One limit per customer, whichever way its events arrive.
    assert _too_many(await post_events(api, a.key, cloudevent("after-hooks"))) >= 1
    # Another customer's hook is not held back.
    other = await hook_connection(api, b)
    assert (await _deliver(api, other, _alarm(1))).status_code == 201
    assert len(await stored_events(api, a)) == BURST


async def test_every_ingress_outcome_is_counted_and_no_refusal_is_stored(api: httpx.AsyncClient, world: World) -> None:
    a, b = world.a.customer, world.b.customer
    a_hook, b_hook = await hook_connection(api, a), await hook_connection(api, b)
    before = await scrape(api)

    # CloudEvents over HTTP, as customer b (five tokens).
    assert (await post_events(api, b.key, cloudevent("e-1"))).status_code == 201
    assert (await post_events(api, b.key, cloudevent("e-1"))).status_code == 200  # a repeat
    assert (await post_events(api, "andon_0000000000_wrong", cloudevent("e-2"))).status_code == 401
    invalid = await post_events(api, b.key, cloudevent("e-3", data={"code": "E1"}))
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "data.message"
    huge = await post_events(api, b.key, cloudevent("e-4", data={"code": "E", "message": "x" * MAX_BODY}))
    assert huge.status_code == 413 and huge.headers["content-type"] == "application/problem+json"
    foreign = await post_events(api, world.b.key, cloudevent("e-5", tenantid=str(a.customer_id)))
    assert foreign.status_code == 404
    assert _too_many(await post_events(api, b.key, [cloudevent(f"e-6-{i}") for i in range(BURST)])) >= 1
    assert (await post_events(api, b.key, [cloudevent(f"e-7-{i}") for i in range(3)])).status_code == 201

    # Webhooks: customer a's hook (five tokens), then customer b's, whose bucket the batch emptied.
    body = _alarm(1)
    headers = signed(a_hook["secret"], body, msg_id="msg_1")
    assert (await api.post(a_hook["webhook_path"], content=body, headers=headers)).status_code == 201
    assert (await api.post(a_hook["webhook_path"], content=body, headers=headers)).status_code == 200
    bad = await api.post(a_hook["webhook_path"], content=body, headers=signed("whsec_" + "A" * 44, body))
    assert bad.status_code == 401 and bad.headers["content-type"] == "application/problem+json"
    unknown = await api.post(f"/hooks/{uuid.uuid4()}", content=body, headers=signed(a_hook["secret"], body))
    assert unknown.status_code == 404
    oversized = b'{"message": "' + b"x" * MAX_BODY + b'"}'
    too_big = await _deliver(api, a_hook, oversized)
    assert too_big.status_code == 413 and too_big.headers["content-type"] == "application/problem+json"
    assert (await _deliver(api, a_hook, b"{not json")).status_code == 422
    assert _too_many(await _deliver(api, b_hook, _alarm(2))) >= 1

    after = await scrape(api)
    deliveries = grown(before, after, "andon_ingress_deliveries_total", "outcome")
    assert deliveries == {
        ("http", "accepted"): 2,
        ("http", "duplicate"): 1,
        ("http", "401"): 1,
        ("http", "404"): 1,
        ("http", "413"): 1,
        ("http", "422"): 1,
        ("http", "429"): 1,
        ("webhook", "accepted"): 1,
        ("webhook", "duplicate"): 1,
        ("webhook", "401"): 1,
        ("webhook", "404"): 1,
        ("webhook", "413"): 1,
        ("webhook", "422"): 1,
        ("webhook", "429"): 1,
    }
    assert grown(before, after, "andon_ingress_seconds_count") == {("http", ""): 8, ("webhook", ""): 7}
    assert grown(before, after, "andon_events_stored_total", "outcome") == {
        ("http", "new"): 4,
        ("http", "duplicate"): 1,
        ("webhook", "new"): 1,
        ("webhook", "duplicate"): 1,
    }
    assert sorted(await stored_events(api, b)) == ["e-1", "e-7-0", "e-7-1", "e-7-2"]
    assert await stored_events(api, a) == ["msg_1"]
    # The scrapes themselves are not ingress.
    assert grown(after, await scrape(api), "andon_ingress_deliveries_total", "outcome") == {}


async def test_with_the_limit_off_nothing_is_refused(settings: Settings, world: World) -> None:
    from andon.platform.http.app import create_app
    from tests.support.browser import browser_on

    app = create_app(settings.model_copy(update={"limits": LimitSettings(events_per_second=0)}))
    try:
        assert app.state.rate_limiter.events is None
        async with browser_on(app, "andon.test") as api:
            for n in range(2):
                r = await post_events(api, world.a.customer.key, [cloudevent(f"n-{n}-{i}") for i in range(BURST)])
                assert r.status_code == 201, r.text
    finally:
        await app.state.engine.dispose()
